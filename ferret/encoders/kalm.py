"""KaLM-Embedding-V2 style dense encoder (arXiv 2506.20923): a Qwen2 decoder with the causal mask removed.

Full bidirectional attention, mean pooling over the non-pad tokens (the prompt included, as in training),
L2 normalisation, Matryoshka dimensions (truncate, then renormalise). Queries get the instruction prompt
`Instruct: {task} \\n Query: ` with the request's task (or `default_instruction`); documents get no prompt.

Options: query_template (with `{instruction}`), default_instruction, matryoshka_dims, plus the common ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ferret.encoders.base import EncodeOptions, Encoder, EncoderKind, ModelInfo, Side
from ferret.encoders.hf_loading import check_option_keys, load_hf_model, make_bidirectional, read_model_type
from ferret.encoders.hf_text import PooledDenseEncoder, TokenSequence

FAMILY = "kalm"
QUERY_TEMPLATE = "Instruct: {instruction} \n Query: "
DEFAULT_INSTRUCTION = "Given a query, retrieve documents that answer the query."
MATRYOSHKA_DIMS = (896, 512, 256, 128, 64)
OPTIONS = {"query_template", "default_instruction", "matryoshka_dims"}


class KalmEncoder(PooledDenseEncoder):
    def __init__(self, name: str, path: str, options: Mapping[str, Any]):
        from transformers import AutoModel

        check_option_keys(name, FAMILY, options, OPTIONS)
        read_model_type(name, FAMILY, path, ("qwen2",))
        super().__init__(load_hf_model(name, FAMILY, path, options, AutoModel))
        make_bidirectional(self.model)
        self.query_template = str(options.get("query_template", QUERY_TEMPLATE))
        self.default_instruction = str(options.get("default_instruction", DEFAULT_INSTRUCTION))
        dimension = int(self.model.config.hidden_size)
        dims = options.get("matryoshka_dims", MATRYOSHKA_DIMS)
        self.info = ModelInfo(
            name=name,
            family=FAMILY,
            kind=EncoderKind.DENSE,
            max_length=self.max_length,
            dimension=dimension,
            matryoshka_dims=tuple(d for d in dims if d <= dimension),
            supports_instructions=True,
            extra={"attention": "bidirectional", "pooling": "mean", "padding_side": self.padding_side},
        )

    def sequence(self, text: str, options: EncodeOptions, limit: int | None) -> TokenSequence:
        if options.side is Side.QUERY:
            text = (
                self.query_template.replace("{instruction}", options.instruction or self.default_instruction)
                + text
            )
        ids = self.tokenizer(text, add_special_tokens=True)["input_ids"][:limit]
        return TokenSequence(ids=ids, pool_start=0, pool_end=len(ids))


def load(name: str, path: str, options: Mapping[str, Any]) -> Encoder:
    return KalmEncoder(name, path, options)
