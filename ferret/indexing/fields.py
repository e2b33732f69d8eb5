"""The index of one collection field together with the encoder that feeds it.

Three kinds: dense (FAISS), learned/precomputed sparse (`SparseIndex`) and BM25 (`BM25Index`, weights
from collection statistics, built from the text). Each turns stored documents into index entries and a
sub-search (text or vector) into (row ids, scores), and refuses to encode with an encoder other than the
one the collection was created with (FAILED_PRECONDITION): vectors of two models are not comparable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferret.encoders.base import EncodeOptions, Encoder, Side, SparseVector
from ferret.encoders.registry import ModelRegistry
from ferret.errors import FailedPrecondition, InvalidArgument, NotFound
from ferret.indexing.dense import DenseIndex
from ferret.indexing.schema import BM25, PRECOMPUTED, CollectionSchema, DenseField, SparseField
from ferret.indexing.store import StoredDocument, check_dense, check_sparse

if TYPE_CHECKING:
    from ferret.indexing.bm25 import TermStatistics

ENCODE_BATCH = 64


@dataclass(frozen=True)
class SubSearch:
    """One component of a query: a field searched with a text (encoded by the field's encoder) or a
    vector (dense array, or SparseVector / (indices, values) for sparse fields)."""

    field: str
    text: str | None = None
    vector: Any = None
    limit: int = 100
    weight: float = 1.0
    name: str | None = None  # how the source is named in hits; defaults to the field name
    encoder: str | None = None  # the encoder the caller means; must be the field's own
    exact: bool = False  # sparse fields: skip the approximate (Seismic) path
    # BM25 fields: the statistics of the whole (sharded) collection to score with instead of the index's own.
    statistics: TermStatistics | None = None

    @property
    def source(self) -> str:
        return self.name or self.field


def encoder_identity(encoder: Encoder) -> dict[str, str]:
    """What must not change between building an index and querying it."""
    info = encoder.info
    identity = {
        "name": info.name,
        "family": info.family,
        "kind": info.kind.value,
        "dimension": str(info.dimension),
        "vocab_size": str(info.vocab_size),
    }
    identity.update({f"extra.{k}": str(v) for k, v in sorted(info.extra.items())})
    return identity


def guarded_encoder(
    registry: ModelRegistry, name: str, identity: dict[str, str], user: str
) -> tuple[Encoder | None, str | None]:
    """(encoder, None) when `name` is loaded as the model `identity` recorded, else (encoder or None, why
    not): what `user` (e.g. "field 'emb'") stored was made by that model and only it may add to it."""
    try:
        encoder = registry.get(name)
    except NotFound as exc:
        return None, f"{user} needs encoder {name!r}, which is not loaded: {exc}"
    current = encoder_identity(encoder)
    if current != identity:
        return encoder, (
            f"{user} was indexed with encoder {identity} but the server now loads {current} under that "
            "name; serve the original model or rebuild the collection"
        )
    return encoder, None


def bm25_identity(field: SparseField) -> dict[str, str]:
    return {"family": "bm25", "k1": repr(float(field.k1)), "b": repr(float(field.b)), "stem": str(field.stem)}


class FieldIndex(ABC):
    def __init__(self, field: DenseField | SparseField, schema: CollectionSchema, registry: ModelRegistry):
        self.field = field
        self.identity = schema.encoders.get(field.name, {})
        self.encoder: Encoder | None = None
        self.unavailable: str | None = None  # why the encoder cannot be used, if it cannot
        if field.encoder not in (PRECOMPUTED, BM25):
            self.encoder, self.unavailable = guarded_encoder(
                registry, field.encoder, self.identity, f"field {field.name!r}"
            )
        self.index = self.new_index()

    @abstractmethod
    def new_index(self) -> Any: ...

    def encode(self, texts: list[str]) -> list[Any] | None:
        """Document vectors computed from texts, or None when the field takes precomputed vectors or, for
        BM25 (whose weights need collection statistics), the text itself."""
        if self.field.encoder in (PRECOMPUTED, BM25):
            return None
        encoder = self.usable_encoder()
        options = EncodeOptions(side=Side.DOCUMENT)
        out: list[Any] = []
        for start in range(0, len(texts), ENCODE_BATCH):
            out.extend(self.embed(encoder, texts[start : start + ENCODE_BATCH], options))
        return out

    def embed(self, encoder: Encoder, texts: list[str], options: EncodeOptions) -> list[Any]:
        """The encoder call of this field kind (dense or sparse vectors)."""
        raise FailedPrecondition(f"field {self.field.name!r} has no encoder")

    @abstractmethod
    def add(self, docs: Sequence[StoredDocument]) -> None: ...

    @abstractmethod
    def search(self, search: SubSearch, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(row ids, scores) best first, at most `search.limit`, no padding."""

    def delete(self, row_ids: np.ndarray) -> None:
        if len(row_ids):
            self.index.delete(row_ids)

    def save(self, directory: Path) -> list[Path]:
        return self.index.save(directory)

    def load(self, directory: Path) -> None:
        self.index = type(self.index).load(directory)

    def __len__(self) -> int:
        return len(self.index)

    def usable_encoder(self, search: SubSearch | None = None) -> Encoder:
        if search is not None and search.encoder and search.encoder != self.field.encoder:
            raise FailedPrecondition(
                f"field {self.field.name!r} was indexed with encoder {self.field.encoder!r}; "
                f"it cannot be queried with {search.encoder!r}"
            )
        if self.unavailable:
            raise FailedPrecondition(self.unavailable)
        if self.encoder is None:
            raise InvalidArgument(
                f"field {self.field.name!r} holds precomputed vectors: query it with a vector, not text"
            )
        return self.encoder

    def _query_kind(self, search: SubSearch) -> None:
        if (search.text is None) == (search.vector is None):
            raise InvalidArgument(f"sub-search on {self.field.name!r}: give exactly one of text or vector")


class DenseFieldIndex(FieldIndex):
    field: DenseField

    def new_index(self) -> DenseIndex:
        return DenseIndex(self.field.dim, self.field.metric, self.field.factory)

    def embed(self, encoder: Encoder, texts: list[str], options: EncodeOptions) -> list[np.ndarray]:
        return list(encoder.embed(texts, options))

    def add(self, docs: Sequence[StoredDocument]) -> None:
        if docs:
            self.index.add(
                np.array([d.row_id for d in docs], np.int64),
                np.stack([d.vectors[self.field.name] for d in docs]),
            )

    def search(self, search: SubSearch, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        self._query_kind(search)
        if search.text is not None:
            vector = self.embed(self.usable_encoder(search), [search.text], EncodeOptions(side=Side.QUERY))[0]
        else:
            vector = check_dense(self.field.name, search.vector, self.field.dim)
        ids, scores = self.index.search(vector[None, :], search.limit, allowed)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]


class SparseFieldIndex(FieldIndex):
    field: SparseField

    def new_index(self) -> Any:
        from ferret.indexing.sparse import SparseIndex

        return SparseIndex(approximate=self.field.approximate)

    def embed(self, encoder: Encoder, texts: list[str], options: EncodeOptions) -> list[SparseVector]:
        return encoder.embed_sparse(texts, options)

    def add(self, docs: Sequence[StoredDocument]) -> None:
        if docs:
            self.index.add(
                np.array([d.row_id for d in docs], np.int64), [d.vectors[self.field.name] for d in docs]
            )

    def search(self, search: SubSearch, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        self._query_kind(search)
        if search.text is not None:
            query = self.embed(self.usable_encoder(search), [search.text], EncodeOptions(side=Side.QUERY))[0]
        else:
            query = check_sparse(self.field.name, search.vector)
        return self.index.search(query, search.limit, allowed, exact=search.exact)


class BM25FieldIndex(FieldIndex):
    field: SparseField

    def new_index(self) -> Any:
        from ferret.encoders.bm25 import Analyzer
        from ferret.indexing.bm25 import BM25Index

        return BM25Index(k1=self.field.k1, b=self.field.b, analyzer=Analyzer(stem=self.field.stem))

    def add(self, docs: Sequence[StoredDocument]) -> None:
        if docs:
            self.index.add(np.array([d.row_id for d in docs], np.int64), [d.text for d in docs])

    def search(self, search: SubSearch, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if search.encoder and search.encoder != "bm25":
            raise FailedPrecondition(
                f"field {self.field.name!r} is a BM25 field; it cannot be queried with "
                f"encoder {search.encoder!r}"
            )
        if search.text is None or search.vector is not None:
            raise InvalidArgument(
                f"sub-search on BM25 field {self.field.name!r}: give a query text, no vector"
            )
        return self.index.search(search.text, search.limit, allowed, search.statistics)

    def term_statistics(self, texts: Sequence[str]) -> TermStatistics:
        return self.index.term_statistics(texts)


def field_index(
    field: DenseField | SparseField, schema: CollectionSchema, registry: ModelRegistry
) -> FieldIndex:
    if isinstance(field, DenseField):
        return DenseFieldIndex(field, schema, registry)
    if field.is_bm25:
        return BM25FieldIndex(field, schema, registry)
    return SparseFieldIndex(field, schema, registry)
