"""SPLADE pooling shared by the masked-LM and decoder-LM SPLADE families.

w_j = pool_i log(1 + ReLU(logit_ij)) over the pooled positions i (max by default, sum as an option), then
top-k pruning to `max_active_dims` per side. The vocabulary projection is split off the model so that the
[batch, length, vocab] logits are computed a block of positions at a time: with a 256k vocabulary a single
512-token text would otherwise need 0.5 GB of fp32 logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ferret.encoders.base import EncodeOptions, EncoderKind, ModelInfo, ModelLoadError, Side, SparseVector
from ferret.encoders.hf_text import TransformerEncoder

POOLINGS = ("max", "sum")
SPLADE_OPTIONS = frozenset({"pooling", "max_active_dims", "max_logit_elements"})
# Largest logits block held at once (floats): 2^26 fp32 = 256 MiB.
DEFAULT_MAX_LOGIT_ELEMENTS = 1 << 26


def split_vocab_head(model: nn.Module) -> nn.Linear:
    """Detach the model's output projection (hidden -> vocabulary), leaving an identity in its place.

    The model's forward then returns the features the projection would have read (after the MLM transform
    or the decoder's final norm), and `splade_pool` applies the projection block by block.
    """
    head = model.get_output_embeddings()
    if not isinstance(head, nn.Linear):
        raise ModelLoadError(f"{type(model).__name__} has no linear vocabulary head to pool over")
    for module in model.modules():
        for child_name, child in module.named_children():
            if child is head:
                setattr(module, child_name, nn.Identity())
                return head
    raise ModelLoadError(f"cannot locate the vocabulary head of {type(model).__name__}")


def splade_pool(
    features: torch.Tensor,
    head: nn.Linear,
    pool_mask: torch.Tensor,
    pooling: str,
    max_logit_elements: int = DEFAULT_MAX_LOGIT_ELEMENTS,
) -> torch.Tensor:
    """[B, V] float32 SPLADE weights from [B, L, H] features, pooled where `pool_mask` [B, L] is 1."""
    batch, length, _ = features.shape
    vocab = head.out_features
    block = max(1, max_logit_elements // max(1, batch * vocab))
    if pooling == "max":
        # log1p and ReLU are monotone, so max_i log1p(ReLU(x_i)) = log1p(ReLU(max_i x_i)): take the max of the
        # raw logits and activate [B, V] once instead of [B, L, V] (exact; elementwise work dominates).
        best = torch.full((batch, vocab), float("-inf"), dtype=torch.float32, device=features.device)
        for start in range(0, length, block):
            keep = pool_mask[:, start : start + block].unsqueeze(-1) > 0
            logits = head(features[:, start : start + block]).float().masked_fill(~keep, float("-inf"))
            best = torch.maximum(best, logits.amax(dim=1))
        return torch.log1p(torch.relu(best))
    total = torch.zeros(batch, vocab, dtype=torch.float32, device=features.device)
    for start in range(0, length, block):
        keep = pool_mask[:, start : start + block].unsqueeze(-1) > 0
        weights = torch.log1p(torch.relu(head(features[:, start : start + block]).float()))
        # masked_fill rather than a product: padded rows may hold NaN, and NaN * 0 is NaN.
        total += weights.masked_fill(~keep, 0.0).sum(dim=1)
    return total


def top_k_sparse(weights: torch.Tensor, max_active_dims: int | None) -> list[SparseVector]:
    """One SparseVector per row: the non-zero weights, at most `max_active_dims` largest, ids ascending."""
    if max_active_dims is not None and max_active_dims < weights.shape[1]:
        values, indices = torch.topk(weights, max_active_dims, dim=1)
        weights = torch.zeros_like(weights).scatter_(1, indices, values)
    rows = weights.cpu().numpy()
    out = []
    for row in rows:
        ids = np.flatnonzero(row)
        out.append(SparseVector(indices=ids, values=row[ids]))
    return out


def parse_max_active_dims(name: str, value: Any) -> dict[Side, int | None]:
    """`max_active_dims` is one int for both sides or a table {query = .., document = ..}."""
    if value is None:
        return {Side.QUERY: None, Side.DOCUMENT: None}
    per_side = value if isinstance(value, Mapping) else {"query": value, "document": value}
    unknown = set(per_side) - {"query", "document"}
    if unknown:
        raise ModelLoadError(
            f"model {name!r}: max_active_dims keys must be query/document, not {sorted(unknown)}"
        )
    out: dict[Side, int | None] = {}
    for side in Side:
        k = per_side.get(side.value)
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k <= 0):
            raise ModelLoadError(
                f"model {name!r}: max_active_dims for {side.value} must be a positive integer"
            )
        out[side] = k
    return out


class SpladeEncoder(TransformerEncoder):
    """embed_sparse over a model whose vocabulary head `split_vocab_head` took off."""

    def configure_splade(self, name: str, head: nn.Linear, options: Mapping[str, Any]) -> None:
        self.head = head
        self.pooling = options.get("pooling", "max")
        if self.pooling not in POOLINGS:
            raise ModelLoadError(f"model {name!r}: pooling must be one of {POOLINGS}, not {self.pooling!r}")
        self.max_active_dims = parse_max_active_dims(name, options.get("max_active_dims"))
        self.max_logit_elements = int(options.get("max_logit_elements", DEFAULT_MAX_LOGIT_ELEMENTS))

    def splade_info(
        self, name: str, family: str, supports_instructions: bool = False, **extra: str
    ) -> ModelInfo:
        return ModelInfo(
            name=name,
            family=family,
            kind=EncoderKind.SPARSE,
            max_length=self.max_length,
            vocab_size=self.head.out_features,
            supports_instructions=supports_instructions,
            extra={"pooling": self.pooling, "padding_side": self.padding_side, **extra},
        )

    @torch.inference_mode()
    def embed_sparse(self, texts: list[str], options: EncodeOptions) -> list[SparseVector]:
        if not texts:
            return []
        batch = self.pad(self.sequences(texts, options))
        features = self.hidden_states(batch)
        weights = splade_pool(features, self.head, batch.pool_mask, self.pooling, self.max_logit_elements)
        return top_k_sparse(weights, self.max_active_dims[options.side])

    def decode_tokens(self, ids: np.ndarray) -> list[str]:
        # A model's vocabulary may be padded past the tokenizer's (ids with no string): name those by number.
        tokens = self.tokenizer.convert_ids_to_tokens([int(i) for i in ids])
        return [tok if tok is not None else f"[id {int(i)}]" for tok, i in zip(tokens, ids, strict=True)]
