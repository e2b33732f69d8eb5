"""Mistral-SPLADE: SPLADE over a decoder LLM's causal-LM logits with echo input (arXiv 2408.11119).

The text is written twice into a prompt template and only the positions of the second copy are pooled, so
every pooled token has attended to the whole text under the unchanged causal mask. With `echo = false` the
text appears once, every real token is pooled and attention is bidirectional by default (for models trained
that way, e.g. CSPLADE-Bi / Lion-SP). Mistral, Llama and Qwen2 configs; LoRA adapters merged at load.

Options: echo (default true), bidirectional (default: not echo), query_template / document_template (with
`{text}` twice under echo, once without; `{instruction}` optional), default_instruction, plus the SPLADE
options (pooling, max_active_dims, max_logit_elements) and the common ones (dtype, device, adapter, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ferret.encoders.base import (
    EncodeOptions,
    Encoder,
    EncoderError,
    ModelLoadError,
    Side,
)
from ferret.encoders.hf_loading import (
    DECODER_TYPES,
    check_option_keys,
    load_hf_model,
    make_bidirectional,
    read_model_type,
)
from ferret.encoders.hf_text import TokenSequence
from ferret.encoders.splade_pooling import SPLADE_OPTIONS, SpladeEncoder, split_vocab_head

FAMILY = "echo-splade"
TEXT = "{text}"
ECHO_TEMPLATES = {
    Side.QUERY: "Query: {text}\nQuery again: {text}",
    Side.DOCUMENT: "Document: {text}\nDocument again: {text}",
}
PLAIN_TEMPLATES = {Side.QUERY: "{text}", Side.DOCUMENT: "{text}"}
OPTIONS = SPLADE_OPTIONS | {
    "echo",
    "bidirectional",
    "query_template",
    "document_template",
    "default_instruction",
}


class EchoSpladeEncoder(SpladeEncoder):
    def __init__(self, name: str, path: str, options: Mapping[str, Any]):
        from transformers import AutoModelForCausalLM

        check_option_keys(name, FAMILY, options, OPTIONS)
        read_model_type(name, FAMILY, path, DECODER_TYPES)
        self.echo = bool(options.get("echo", True))
        defaults = ECHO_TEMPLATES if self.echo else PLAIN_TEMPLATES
        self.templates = {side: str(options.get(f"{side.value}_template", defaults[side])) for side in Side}
        copies = 2 if self.echo else 1
        for side, template in self.templates.items():
            if template.count(TEXT) != copies:
                raise ModelLoadError(
                    f"model {name!r}: {side.value}_template must contain {TEXT} exactly {copies} time(s) "
                    f"with echo={'on' if self.echo else 'off'}: {template!r}"
                )
        self.default_instruction = str(options.get("default_instruction", ""))
        loaded = load_hf_model(name, FAMILY, path, options, AutoModelForCausalLM)
        super().__init__(loaded)
        if bool(options.get("bidirectional", not self.echo)):
            make_bidirectional(self.model)
        self.configure_splade(name, split_vocab_head(self.model), options)
        self.bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        self.eos = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        self.info = self.splade_info(
            name,
            FAMILY,
            supports_instructions=any("{instruction}" in t for t in self.templates.values()),
            echo=str(self.echo).lower(),
        )

    def sequence(self, text: str, options: EncodeOptions, limit: int | None) -> TokenSequence:
        # Template pieces and the text are tokenized apart and concatenated, so the second copy's span is
        # exact and truncation cuts both copies alike.
        instruction = options.instruction or self.default_instruction
        pieces = [
            self._ids(p.replace("{instruction}", instruction))
            for p in self.templates[options.side].split(TEXT)
        ]
        text_ids = self._ids(text)
        copies = len(pieces) - 1
        if limit is not None:
            fixed = len(self.bos) + len(self.eos) + sum(len(p) for p in pieces)
            budget = (limit - fixed) // copies
            if budget < 1:
                raise EncoderError(
                    f"the {options.side.value} template of model {self.info.name!r} with this instruction is "
                    f"{fixed} tokens, leaving no room for the text within {limit}; shorten the instruction"
                )
            text_ids = text_ids[:budget]
        ids = list(self.bos) + pieces[0]
        for piece in pieces[1:]:
            start = len(ids)
            ids += text_ids + piece
        if self.echo:
            span = (start, start + len(text_ids))
        else:
            span = (0, len(ids) + len(self.eos))
        return TokenSequence(ids=ids + self.eos, pool_start=span[0], pool_end=span[1])

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]


def load(name: str, path: str, options: Mapping[str, Any]) -> Encoder:
    return EchoSpladeEncoder(name, path, options)
