"""SPLADE on a masked-LM backbone (BERT, DistilBERT, RoBERTa... loaded with AutoModelForMaskedLM).

Options (model config `options` table): pooling max|sum, max_active_dims (int or {query, document}),
max_logit_elements (logits block size), dtype, device, max_length, padding_side, attn_implementation.
Queries and documents go through the same network; the sides differ in their pruning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ferret.encoders.base import EncodeOptions, Encoder
from ferret.encoders.hf_loading import check_option_keys, load_hf_model, read_model_type
from ferret.encoders.hf_text import TokenSequence
from ferret.encoders.splade_pooling import SPLADE_OPTIONS, SpladeEncoder, split_vocab_head

FAMILY = "splade"
# These compute positions from the padding in input_ids themselves and must not be given position ids.
SELF_POSITIONED_TYPES = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text"})


class MaskedLMSpladeEncoder(SpladeEncoder):
    def __init__(self, name: str, path: str, options: Mapping[str, Any]):
        from transformers import AutoModelForMaskedLM
        from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

        check_option_keys(name, FAMILY, options, SPLADE_OPTIONS)
        model_type = read_model_type(name, FAMILY, path, MODEL_FOR_MASKED_LM_MAPPING_NAMES)
        loaded = load_hf_model(name, FAMILY, path, options, AutoModelForMaskedLM)
        super().__init__(loaded)
        self.pass_position_ids = model_type not in SELF_POSITIONED_TYPES
        self.configure_splade(name, split_vocab_head(self.model), options)
        self.info = self.splade_info(name, FAMILY)

    def sequence(self, text: str, options: EncodeOptions, limit: int | None) -> TokenSequence:
        # The tokenizer adds [CLS]/[SEP] (or <s>/</s>) and, when truncating, keeps them.
        ids = self.tokenizer(text, add_special_tokens=True, truncation=limit is not None, max_length=limit)[
            "input_ids"
        ]
        return TokenSequence(ids=ids, pool_start=0, pool_end=len(ids))


def load(name: str, path: str, options: Mapping[str, Any]) -> Encoder:
    return MaskedLMSpladeEncoder(name, path, options)
