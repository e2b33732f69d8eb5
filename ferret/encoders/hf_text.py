"""Common machinery of the transformer encoder families: token sequences, padding, pooling spans, forward.

A family says how one text becomes a `TokenSequence` (prompt, special tokens, echo copy) and which span of it
is pooled; this module pads a batch on the configured side, gives every real token the position it would
have alone (so left and right padding give the same vectors as unbatched input), and maps each pooled span
to padded positions. Mean pooling over a span covers mean pooling (the whole text), last-token pooling (a
span of one) and echo pooling (the second copy).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from ferret.encoders.base import EncodeOptions, Encoder, EncoderError, matryoshka
from ferret.encoders.hf_loading import LoadedModel


@dataclass(frozen=True)
class TokenSequence:
    ids: list[int]
    pool_start: int  # first pooled position
    pool_end: int  # one past the last pooled position


@dataclass(frozen=True)
class PaddedBatch:
    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L], 1 on real tokens
    position_ids: torch.Tensor  # [B, L], 0.. along each text's real tokens
    pool_mask: torch.Tensor  # [B, L] float, 1 on pooled positions


class TransformerEncoder(Encoder):
    """Base of the transformer families; subclasses define `sequence` and set `info`."""

    # Models that derive positions from the padding themselves (RoBERTa) must not be given position ids.
    pass_position_ids: bool = True

    def __init__(self, loaded: LoadedModel):
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device
        self.padding_side = loaded.padding_side
        self.max_length = loaded.max_length
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        self.pad_id = int(pad or 0)

    @abstractmethod
    def sequence(self, text: str, options: EncodeOptions, limit: int | None) -> TokenSequence:
        """The model input for one text, at most `limit` tokens when a limit is given."""

    def token_ids(self, texts: list[str], options: EncodeOptions) -> list[list[int]]:
        self.check_options(options)
        return [self.sequence(text, options, None).ids for text in texts]

    def sequences(self, texts: list[str], options: EncodeOptions) -> list[TokenSequence]:
        """Sequences within max_length: cut when `options.truncate`, else an over-long text is an error."""
        self.check_options(options)
        out = []
        for i, text in enumerate(texts):
            seq = self.sequence(text, options, None)
            if not seq.ids:
                raise EncoderError(
                    f"text {i} is empty and model {self.info.name!r} adds no tokens to it; send text"
                )
            if len(seq.ids) > self.max_length:
                if not options.truncate:
                    raise EncoderError(
                        f"text {i} is {len(seq.ids)} tokens as fed to model {self.info.name!r}, "
                        f"which takes at "
                        f"most {self.max_length}; shorten it or allow truncation"
                    )
                seq = self.sequence(text, options, self.max_length)
            out.append(seq)
        return out

    def pad(self, seqs: list[TokenSequence]) -> PaddedBatch:
        width = max(len(s.ids) for s in seqs)
        ids = np.full((len(seqs), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        pool = np.zeros((len(seqs), width), dtype=np.float32)
        for row, seq in enumerate(seqs):
            offset = width - len(seq.ids) if self.padding_side == "left" else 0
            ids[row, offset : offset + len(seq.ids)] = seq.ids
            mask[row, offset : offset + len(seq.ids)] = 1
            pool[row, offset + seq.pool_start : offset + seq.pool_end] = 1.0
        attention = torch.from_numpy(mask)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        return PaddedBatch(
            input_ids=torch.from_numpy(ids).to(self.device),
            attention_mask=attention.to(self.device),
            position_ids=positions.to(self.device),
            pool_mask=torch.from_numpy(pool).to(self.device),
        )

    def hidden_states(self, batch: PaddedBatch) -> torch.Tensor:
        """Last-layer features [B, L, H] (pre-head features for an LM whose head was split off)."""
        kwargs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if self.pass_position_ids:
            kwargs["position_ids"] = batch.position_ids
        out = self.model(**kwargs)
        return out.logits if hasattr(out, "logits") else out.last_hidden_state


class PooledDenseEncoder(TransformerEncoder):
    """A dense encoder: mean of the last hidden states over each sequence's pooled span."""

    @torch.inference_mode()
    def embed(self, texts: list[str], options: EncodeOptions) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.info.dimension), dtype=np.float32)
        batch = self.pad(self.sequences(texts, options))
        hidden = self.hidden_states(batch).float()
        pooled_positions = batch.pool_mask.unsqueeze(-1) > 0
        # masked_fill, not a product: a padded row of a left-padded batch may hold NaN, and NaN * 0 is NaN.
        pooled = hidden.masked_fill(~pooled_positions, 0.0).sum(1) / pooled_positions.sum(1)
        return matryoshka(pooled.cpu().numpy(), options.dimensions, options.normalize)
