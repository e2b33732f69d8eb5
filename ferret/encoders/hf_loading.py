"""Loading a local Hugging Face model directory for an encoder family, with every check done at start-up.

Shared by the transformer families (SPLADE, echo SPLADE, KaLM, Revela): option validation, dtype and device
selection, architecture checks (a config that does not fit the family is refused, not served wrongly), PEFT
adapter merge, and switching a decoder to bidirectional attention.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ferret.encoders.base import ModelLoadError

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}

# Options every transformer family understands; a family adds its own on top.
COMMON_OPTIONS = frozenset(
    {"dtype", "device", "max_length", "padding_side", "attn_implementation", "adapter"}
)

# Decoder model types whose attention honours position_ids and the `is_causal` switch (checked by the
# bidirectionality and batching tests); other decoders are refused rather than served unverified.
DECODER_TYPES = ("llama", "mistral", "qwen2")


@dataclass(frozen=True)
class LoadedModel:
    model: torch.nn.Module
    tokenizer: Any  # a transformers PreTrainedTokenizerBase
    device: torch.device
    dtype: torch.dtype
    max_length: int
    padding_side: str


def check_option_keys(name: str, family: str, options: Mapping[str, Any], extra: Collection[str]) -> None:
    allowed = COMMON_OPTIONS | set(extra)
    unknown = set(options) - allowed
    if unknown:
        raise ModelLoadError(
            f"model {name!r} ({family}): unknown options {sorted(unknown)}; "
            f"known: {', '.join(sorted(allowed))}"
        )


def select_device(name: str, value: str | None) -> torch.device:
    """`auto` (default) is the GPU when one is present, else the CPU."""
    if value in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(value)
    except RuntimeError as exc:
        raise ModelLoadError(f"model {name!r}: device {value!r} is not a torch device ({exc})") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"model {name!r}: device {value!r} asked for, but no GPU is available")
    return device


def select_dtype(name: str, value: str | None, device: torch.device) -> torch.dtype:
    """`auto` (default) is bf16 on a GPU and fp32 on the CPU."""
    if value in (None, "", "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return DTYPES[str(value).lower()]
    except KeyError:
        raise ModelLoadError(f"model {name!r}: dtype {value!r} is not one of fp32, bf16, fp16") from None


def read_model_type(name: str, family: str, path: str, model_types: Collection[str]) -> str:
    """The directory's `model_type`, refused when the family cannot run that architecture."""
    if not path:
        raise ModelLoadError(f"model {name!r} ({family}): set `path` to a local Hugging Face model directory")
    directory = Path(path)
    if not directory.is_dir():
        raise ModelLoadError(f"model {name!r} ({family}): model directory {path} does not exist")
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(
            f"model {name!r} ({family}): {path} has no config.json; is it a model directory?"
        )
    model_type = json.loads(config_file.read_text()).get("model_type", "")
    if model_type not in model_types:
        raise ModelLoadError(
            f"model {name!r}: family {family!r} runs model types {', '.join(sorted(model_types))}, "
            f"but {config_file} says model_type {model_type!r}; pick the family that matches the architecture"
        )
    return model_type


def load_hf_model(
    name: str,
    family: str,
    path: str,
    options: Mapping[str, Any],
    auto_class: type,
    default_padding_side: str = "right",
) -> LoadedModel:
    """Tokenizer and model from `path` in eval mode on the chosen device, the adapter (if any) merged."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    device = select_device(name, options.get("device"))
    dtype = select_dtype(name, options.get("dtype"), device)
    padding_side = options.get("padding_side", default_padding_side)
    if padding_side not in ("left", "right"):
        raise ModelLoadError(f"model {name!r}: padding_side must be 'left' or 'right', not {padding_side!r}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"model {name!r} ({family}): cannot load a tokenizer from {path}: {exc}"
        ) from exc
    kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": True, "output_loading_info": True}
    if options.get("attn_implementation"):
        kwargs["attn_implementation"] = options["attn_implementation"]
    try:
        model, info = auto_class.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model {name!r} ({family}): cannot load weights from {path}: {exc}") from exc
    if info.get("missing_keys"):
        # A head left randomly initialised would give fluent-looking garbage; refuse it.
        missing = sorted(info["missing_keys"])
        raise ModelLoadError(
            f"model {name!r} ({family}): {path} lacks weights {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}; "
            f"the checkpoint does not fit {auto_class.__name__}"
        )
    if options.get("adapter"):
        model = merge_adapter(name, model, str(options["adapter"]))
    max_length = int(options.get("max_length", 512))
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions and max_length > max_positions:
        raise ModelLoadError(
            f"model {name!r}: max_length {max_length} exceeds the model's {max_positions} positions"
        )
    return LoadedModel(
        model=model.to(device).eval(),
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        max_length=max_length,
        padding_side=padding_side,
    )


def merge_adapter(name: str, model: torch.nn.Module, adapter_path: str) -> torch.nn.Module:
    """Merge a LoRA/PEFT adapter into the base weights, so that serving pays nothing for it."""
    from peft import PeftModel

    if not (Path(adapter_path) / "adapter_config.json").is_file():
        raise ModelLoadError(f"model {name!r}: adapter directory {adapter_path} has no adapter_config.json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            peft_model = PeftModel.from_pretrained(model, adapter_path, is_trainable=False)
        except (RuntimeError, ValueError, KeyError, OSError) as exc:
            raise ModelLoadError(
                f"model {name!r}: adapter {adapter_path} does not fit the base model "
                f"(was it trained on another base?): {type(exc).__name__}: {exc}"
            ) from exc
    for warning in caught:
        if "missing adapter keys" in str(warning.message):
            raise ModelLoadError(
                f"model {name!r}: adapter {adapter_path} does not fit the base model's module names "
                f"(was it trained on another base or model class?): {warning.message}"
            )
    return peft_model.merge_and_unload()


def make_bidirectional(model: torch.nn.Module) -> None:
    """Full attention in a decoder: no causal mask, padding still masked.

    transformers 5 builds a bidirectional padding mask when `config.is_causal` is False; when there is no
    padding it passes no mask at all and SDPA/flash fall back to each attention module's `is_causal` flag, so
    both must be switched off.
    """
    model.config.is_causal = False
    switched = 0
    for module in model.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False
            switched += 1
    if switched == 0:
        raise ModelLoadError(f"{type(model).__name__} has no attention modules with an `is_causal` switch")
