"""Compressed documents: a collection's ARC-Encoder and what it keeps for each document.

A collection created with `compression = {encoder = "...", pooling_factor = x}` stores every document's
text compressed in encoder space (`ArcEncoder.compress(..., project=False)`, m = ceil(n / x) vectors). The
projector is linear and per decoder, so one stored copy serves every decoder: a query that names a decoder
gets its hits' vectors projected for it, with that decoder's `<Cont>`, ready for
`ferret.client.arc.splice_compressed`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ferret.encoders.base import CompressedText, EncodeOptions
from ferret.encoders.registry import ModelRegistry
from ferret.errors import FailedPrecondition, InvalidArgument
from ferret.indexing.fields import guarded_encoder
from ferret.indexing.schema import CompressionOption


class DocumentCompressor:
    """The compressor a collection was created with; refuses (FAILED_PRECONDITION) any other model."""

    def __init__(self, option: CompressionOption, identity: dict[str, str], registry: ModelRegistry):
        self.option = option
        self.encoder, self.unavailable = guarded_encoder(registry, option.encoder, identity, "compression")

    def _usable(self):
        if self.unavailable:
            raise FailedPrecondition(self.unavailable)
        return self.encoder

    def compress(self, doc_ids: Sequence[str], texts: Sequence[str]) -> list[CompressedText]:
        """Encoder-space compressed texts, one per document (texts longer than the model's limit are cut)."""
        empty = [i for i, t in zip(doc_ids, texts, strict=True) if not t.strip()]
        if empty:
            raise InvalidArgument(
                f"documents {empty[:3]} have no text; a collection with compression needs text to compress"
            )
        encoder = self._usable()
        return encoder.compress(list(texts), EncodeOptions(), pooling_factor=self.option.pooling_factor,
                                project=False)

    def check_decoder(self, decoder: str) -> None:
        """InvalidArgument when the compressor has no such decoder; before any search runs."""
        self._usable().decoder_index(decoder)

    def project(self, stored: Sequence[CompressedText], decoder: str) -> list[CompressedText]:
        """`stored` (encoder space) in `decoder`'s hidden size with its `<Cont>`, in one projector call."""
        if not stored:
            return []
        encoder = self._usable()
        together = CompressedText(vectors=np.concatenate([s.vectors for s in stored]), num_tokens=0,
                                  pooling_factor=self.option.pooling_factor, decoder=None, continuation=None)
        projected = encoder.project(together, decoder)
        bounds = np.cumsum([s.m for s in stored])[:-1]
        return [
            CompressedText(vectors=v, num_tokens=s.num_tokens, pooling_factor=s.pooling_factor,
                           decoder=projected.decoder, continuation=projected.continuation)
            for s, v in zip(stored, np.split(projected.vectors, bounds), strict=True)
        ]
