"""The schema of a collection: its named dense and sparse vector fields.

A field either names an encoder of the `ModelRegistry` (vectors are computed from the document text) or is
"precomputed" (the caller supplies vectors). A sparse field with encoder "bm25" keeps no vectors: BM25
weights depend on collection statistics, so its index is built from the text.

Optionally a collection names an ARC-Encoder (`compression`): each document's text is then also kept
compressed, in encoder space, so that hits can come back ready for a decoder's prompt.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ferret.errors import InvalidArgument, NotFound

PRECOMPUTED = "precomputed"
BM25 = "bm25"
METRICS = ("cosine", "ip", "l2")
# Where the compressed representation is kept among a document's vectors; no field name starts with '@'.
COMPRESSED_FIELD = "@compressed"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


def check_name(kind: str, name: str) -> str:
    """Collection, alias and field names: 1-128 of letters, digits, `_`, `.`, `-` (they name directories)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(
            f"{kind} name {name!r} is invalid: use 1-128 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'"
        )
    return name


@dataclass(frozen=True)
class DenseField:
    name: str
    encoder: str = PRECOMPUTED
    dim: int = 0  # resolved from the encoder when one is named
    metric: str = "cosine"
    factory: str = "Flat"  # a faiss.index_factory string such as "HNSW32" or "IVF1024,PQ64"

    def __post_init__(self) -> None:
        check_name("field", self.name)
        if self.metric not in METRICS:
            raise InvalidArgument(
                f"dense field {self.name!r}: metric {self.metric!r} is unknown; use one of {METRICS}"
            )
        if self.encoder == PRECOMPUTED and not (isinstance(self.dim, int) and 0 < self.dim <= 65536):
            raise InvalidArgument(
                f"dense field {self.name!r} is precomputed: give its dimension (1..65536), not {self.dim!r}"
            )
        if not isinstance(self.factory, str) or not self.factory.strip():
            raise InvalidArgument(
                f"dense field {self.name!r}: the index factory string is empty; e.g. 'Flat'"
            )


@dataclass(frozen=True)
class SparseField:
    name: str
    encoder: str = PRECOMPUTED  # a learned sparse model, "bm25" or "precomputed"
    k1: float = 0.9  # BM25 only (Pyserini's defaults)
    b: float = 0.4
    stem: bool = True  # BM25 analyzer: Porter stemming on/off
    approximate: bool = True  # learned/precomputed: allow the Seismic path for large static segments

    def __post_init__(self) -> None:
        check_name("field", self.name)
        if self.encoder == BM25:
            if not (math.isfinite(self.k1) and self.k1 >= 0):
                raise InvalidArgument(
                    f"bm25 field {self.name!r}: k1 must be a finite number >= 0, not {self.k1}"
                )
            if not (math.isfinite(self.b) and 0 <= self.b <= 1):
                raise InvalidArgument(f"bm25 field {self.name!r}: b must be in [0, 1], not {self.b}")

    @property
    def is_bm25(self) -> bool:
        return self.encoder == BM25


@dataclass(frozen=True)
class CompressionOption:
    """Keep every document compressed by ARC-Encoder `encoder` at `pooling_factor` tokens per vector."""

    encoder: str
    pooling_factor: int = 0  # 0: the model's default, fixed when the collection is created

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, str) or not self.encoder:
            raise InvalidArgument("compression needs the name of a compressor model, e.g. {'encoder': 'arc8'}")
        if isinstance(self.pooling_factor, bool) or not isinstance(self.pooling_factor, int) or self.pooling_factor < 0:
            raise InvalidArgument(
                f"compression pooling_factor must be a positive integer (0: the model's default), "
                f"not {self.pooling_factor!r}"
            )


@dataclass(frozen=True)
class CollectionSchema:
    dense: tuple[DenseField, ...] = ()
    sparse: tuple[SparseField, ...] = ()
    compression: CompressionOption | None = None
    # Encoder identity of each encoder-backed field as it was when the collection was created
    # (family, dimension, path...); an index is only queried with the encoder it was built with.
    encoders: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [f.name for f in (*self.dense, *self.sparse)]
        if not names:
            raise InvalidArgument("a collection needs at least one dense or sparse field")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidArgument(f"field names must be unique; repeated: {duplicates}")

    def field(self, name: str) -> DenseField | SparseField:
        for f in (*self.dense, *self.sparse):
            if f.name == name:
                return f
        raise NotFound(
            f"unknown field {name!r}; this collection has fields: "
            f"{', '.join(f.name for f in (*self.dense, *self.sparse))}"
        )

    @property
    def bm25_fields(self) -> frozenset[str]:
        return frozenset(f.name for f in self.sparse if f.is_bm25)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CollectionSchema:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CollectionSchema:
        """Schema from plain data, e.g. {"dense": [{"name": "emb", "encoder": "all-MiniLM-L6-v2"}],
        "sparse": [{"name": "bm25", "encoder": "bm25"}]}."""
        unknown = set(data) - {"dense", "sparse", "compression", "encoders"}
        if unknown:
            raise InvalidArgument(f"unknown schema keys {sorted(unknown)}; use dense, sparse, compression")
        compression = data.get("compression")
        try:
            return cls(
                dense=tuple(DenseField(**f) for f in data.get("dense", ())),
                sparse=tuple(SparseField(**f) for f in data.get("sparse", ())),
                compression=None if compression is None else CompressionOption(**compression),
                encoders=dict(data.get("encoders", {})),
            )
        except TypeError as exc:  # unknown or missing keyword of a field
            raise InvalidArgument(f"bad field definition: {exc}") from None
