"""GPU check of the encoder families: bf16 on the GPU against fp32 on the CPU, and document tokens/s.

Each step builds one family's model from random weights at a realistic size (`--size full`: BERT-base
SPLADE, a 1B Mistral-shaped echo SPLADE, Qwen2-0.5B-shaped KaLM and Revela with a LoRA adapter), loads it
twice through Ferret's registry (fp32 CPU, bf16 GPU), checks cosine >= 0.99 between the two on every test
text, and times document encoding on the GPU. Without a GPU it runs the tiny size on the CPU only (fp32
against bf16, both on CPU) and says so.

    PYTHONPATH=. python bench/gpu_check.py --size full     # on a GPU machine
    PYTHONPATH=. python bench/gpu_check.py                 # tiny, anywhere

A step is a function (workdir, size, device) -> StepResult; add new families to STEPS. The ARC-Encoder
step (compression tokens/s against its target, `bench/gpu_check_arc.py`) runs after them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gpu_check_arc import arc_step, print_row  # noqa: E402  (bench/ is on sys.path when run as a script)

from ferret.encoders.base import EncodeOptions, Encoder, EncoderKind, Side  # noqa: E402
from ferret.encoders.registry import ModelConfig, default_minilm_path, load_model  # noqa: E402
from ferret.testing.random_models import (  # noqa: E402
    MISTRAL_1B,
    QWEN2_05B,
    DecoderShape,
    build_bert_mlm,
    build_bpe_tokenizer,
    build_decoder,
    build_lora_adapter,
    sample_sentences,
)

MIN_COSINE = 0.99
DOC = EncodeOptions(side=Side.DOCUMENT)
TINY = DecoderShape()


@dataclass(frozen=True)
class StepResult:
    family: str
    model: str
    min_cosine: float
    tokens_per_s: float

    @property
    def ok(self) -> bool:
        return self.min_cosine >= MIN_COSINE


def documents(count: int, words: int, seed: int) -> list[str]:
    """`count` documents of roughly `words` words each from the shared synthetic vocabulary."""
    sentences = iter(sample_sentences(count * words // 4, seed=seed))
    out = []
    for _ in range(count):
        text = ""
        while len(text.split()) < words:
            text += next(sentences) + ". "
        out.append(text.strip())
    return out


def vectors(encoder: Encoder, texts: list[str]) -> np.ndarray:
    """Dense rows for dense or sparse encoders (sparse scattered into vocabulary-sized rows)."""
    if encoder.info.kind is EncoderKind.DENSE:
        return encoder.embed(texts, DOC)
    out = np.zeros((len(texts), encoder.info.vocab_size), dtype=np.float32)
    for row, vec in enumerate(encoder.embed_sparse(texts, DOC)):
        out[row, vec.indices] = vec.values
    return out


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float((num / np.maximum(den, 1e-12)).min())


def tokens_per_second(encoder: Encoder, texts: list[str], batch: int) -> float:
    """Document encoding throughput: tokens as fed to the model per second of wall time, after a warm-up."""
    vectors(encoder, texts[:batch])
    tokens = sum(len(ids) for ids in encoder.token_ids(texts, DOC))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        vectors(encoder, texts[i : i + batch])  # results come back to host memory, so this also synchronises
    return tokens / (time.perf_counter() - start)


def compare(family: str, label: str, path: Path, options: dict, size: str, device: str) -> StepResult:
    """Load `path` as fp32 CPU and as bf16 on `device`; cosine between them and throughput on `device`."""
    reference = load_model(
        ModelConfig(f"{family}-fp32", family, str(path), {**options, "dtype": "fp32", "device": "cpu"})
    )
    fast = load_model(
        ModelConfig(f"{family}-bf16", family, str(path), {**options, "dtype": "bf16", "device": device})
    )
    probe = documents(8, 120, seed=1)
    cosine = min_cosine(vectors(reference, probe), vectors(fast, probe))
    del reference
    count, batch = (512, 32) if size == "full" else (32, 8)
    throughput = tokens_per_second(fast, documents(count, 200, seed=2), batch)
    return StepResult(family, label, cosine, throughput)


def decoder_shape(size: str, full: DecoderShape) -> DecoderShape:
    return full if size == "full" else TINY


def tokenizer_dir(workdir: Path) -> Path:
    path = workdir / "bpe"
    if not path.exists():
        build_bpe_tokenizer(path)
    return path


def step_splade(workdir: Path, size: str, device: str) -> StepResult:
    hidden, layers = (768, 12) if size == "full" else (32, 2)
    path = build_bert_mlm(workdir / "bert-mlm", default_minilm_path(), hidden_size=hidden, layers=layers)
    return compare("splade", f"BERT {hidden}x{layers}", path, {}, size, device)


def step_echo_splade(workdir: Path, size: str, device: str) -> StepResult:
    shape = decoder_shape(size, MISTRAL_1B)
    path = build_decoder(workdir / "mistral-lm", "mistral", tokenizer_dir(workdir), shape=shape)
    return compare(
        "echo-splade", f"Mistral {shape.hidden_size}x{shape.num_hidden_layers}", path, {}, size, device
    )


def step_kalm(workdir: Path, size: str, device: str) -> StepResult:
    shape = decoder_shape(size, QWEN2_05B)
    path = build_decoder(
        workdir / "qwen2-kalm", "qwen2", tokenizer_dir(workdir), shape=shape, causal_lm=False
    )
    return compare("kalm", f"Qwen2 {shape.hidden_size}x{shape.num_hidden_layers}", path, {}, size, device)


def step_revela(workdir: Path, size: str, device: str) -> StepResult:
    shape = decoder_shape(size, QWEN2_05B)
    base = build_decoder(
        workdir / "qwen2-revela", "qwen2", tokenizer_dir(workdir), shape=shape, causal_lm=False
    )
    adapter = build_lora_adapter(workdir / "qwen2-revela-lora", base, causal_lm=False, rank=16)
    label = f"Qwen2 {shape.hidden_size}x{shape.num_hidden_layers} + LoRA"
    return compare("revela", label, base, {"adapter": str(adapter)}, size, device)


STEPS: list[Callable[[Path, str, str], StepResult]] = [step_splade, step_echo_splade, step_kalm, step_revela]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    args = parser.parse_args(argv)
    device, size = "cpu", args.size
    if torch.cuda.is_available():
        device = "cuda"
        print(f"GPU: {torch.cuda.get_device_name(0)}; bf16 on the GPU vs fp32 on the CPU; size {size}")
    else:
        size = "tiny"
        print(
            "No GPU: running the tiny size on the CPU only (bf16 CPU vs fp32 CPU); "
            "these numbers say nothing about GPU speed."
        )
    print(f"{'family':<12} {'model':<26} {'min cosine':>10} {'doc tokens/s':>13}  result")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="ferret-gpu-check-") as tmp:
        for step in STEPS:
            result = step(Path(tmp), size, device)
            failed += not result.ok
            print(
                f"{result.family:<12} {result.model:<26} {result.min_cosine:>10.5f} "
                f"{result.tokens_per_s:>13,.0f}  {'ok' if result.ok else f'FAIL (< {MIN_COSINE})'}"
            )
    print()
    if device == "cuda":
        arc = arc_step(device, torch.bfloat16, size)
    else:
        arc = arc_step(device, torch.float32, "tiny", batch=4, seq_len=256, iters=2)
    print_row(arc)
    target = arc["target_tokens_per_s"]
    failed += bool(target) and arc["tokens_per_s"] < target
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
