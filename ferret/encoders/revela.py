"""Revela style dense encoder (arXiv 2506.16552): a causal LLM with its LoRA adapter merged at load time.

RepLLaMA-style inference: `query:  ` / `passage:  ` prefixes (two spaces, as in the authors' evaluation
wrapper), the tokenizer's own special tokens, EOS appended, normal causal attention, the hidden state of
that last (EOS) token as the embedding, L2-normalised. Left or right padding gives the same vectors.

Options: adapter (PEFT directory; `path` is the base model), query_prefix, document_prefix, and the
common ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ferret.encoders.base import EncodeOptions, Encoder, EncoderKind, ModelInfo, ModelLoadError, Side
from ferret.encoders.hf_loading import DECODER_TYPES, check_option_keys, load_hf_model, read_model_type
from ferret.encoders.hf_text import PooledDenseEncoder, TokenSequence

FAMILY = "revela"
PREFIXES = {Side.QUERY: "query:  ", Side.DOCUMENT: "passage:  "}
OPTIONS = {"query_prefix", "document_prefix"}


class RevelaEncoder(PooledDenseEncoder):
    def __init__(self, name: str, path: str, options: Mapping[str, Any]):
        from transformers import AutoModel

        check_option_keys(name, FAMILY, options, OPTIONS)
        read_model_type(name, FAMILY, path, DECODER_TYPES)
        super().__init__(load_hf_model(name, FAMILY, path, options, AutoModel))
        if self.tokenizer.eos_token_id is None:
            raise ModelLoadError(f"model {name!r}: the tokenizer in {path} defines no EOS token to pool on")
        self.prefixes = {side: str(options.get(f"{side.value}_prefix", PREFIXES[side])) for side in Side}
        self.info = ModelInfo(
            name=name,
            family=FAMILY,
            kind=EncoderKind.DENSE,
            max_length=self.max_length,
            dimension=int(self.model.config.hidden_size),
            extra={"attention": "causal", "pooling": "last-token", "padding_side": self.padding_side},
        )

    def sequence(self, text: str, options: EncodeOptions, limit: int | None) -> TokenSequence:
        ids = self.tokenizer(self.prefixes[options.side] + text, add_special_tokens=True)["input_ids"]
        if limit is not None:
            ids = ids[: limit - 1]
        ids = ids + [self.tokenizer.eos_token_id]
        return TokenSequence(ids=ids, pool_start=len(ids) - 1, pool_end=len(ids))


def load(name: str, path: str, options: Mapping[str, Any]) -> Encoder:
    return RevelaEncoder(name, path, options)
