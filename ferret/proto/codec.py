"""Conversions between the `ferret.v1` collections/search messages and the engine's types.

Shared by the server (request -> engine, engine -> response) and the Python client (the reverse), so both
sides pack vectors the same way: dense as little-endian float32 bytes, sparse as parallel little-endian
uint32 indices and float32 values. Malformed input raises InvalidArgument naming what to fix; the
engine validates the decoded values further (dimension, NaN, sorted indices...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from google.protobuf import json_format, struct_pb2

from ferret.encoders.base import SparseVector
from ferret.errors import InvalidArgument
from ferret.indexing.bm25 import TermStatistics
from ferret.indexing.filters import Filter, Match, MatchAny, Range
from ferret.indexing.fusion import RRF, Fusion, SourceScore, WeightedSum
from ferret.indexing.schema import BM25, CollectionSchema, CompressionOption, DenseField, SparseField
from ferret.proto.ferret.v1 import collections_pb2 as pb

METRICS = {pb.METRIC_UNSPECIFIED: "cosine", pb.COSINE: "cosine", pb.INNER_PRODUCT: "ip", pb.L2: "l2"}
METRIC_VALUES = {"cosine": pb.COSINE, "ip": pb.INNER_PRODUCT, "l2": pb.L2}
NORMALIZATIONS = {pb.NORMALIZATION_UNSPECIFIED: "min-max", pb.MIN_MAX: "min-max", pb.Z_SCORE: "z-score"}
NORMALIZATION_VALUES = {"min-max": pb.MIN_MAX, "z-score": pb.Z_SCORE}
DEFAULT_SEARCH_LIMIT = 100
DEFAULT_QUERY_LIMIT = 10


# -- vectors ----------------------------------------------------------------------------------------


def _float32s(data: bytes, what: str) -> np.ndarray:
    if len(data) % 4:
        raise InvalidArgument(f"{what}: {len(data)} bytes is not a multiple of 4 (packed little-endian float32)")
    return np.frombuffer(data, dtype="<f4")


def decode_dense(message: pb.DenseVector, what: str) -> np.ndarray:
    return _float32s(message.values, what)


def decode_sparse(message: pb.SparseVector, what: str) -> SparseVector:
    if len(message.indices) % 4:
        raise InvalidArgument(
            f"{what}: {len(message.indices)} index bytes is not a multiple of 4 (packed little-endian uint32)"
        )
    indices = np.frombuffer(message.indices, dtype="<u4")
    values = _float32s(message.values, what)
    if indices.shape != values.shape:
        raise InvalidArgument(f"{what}: {len(indices)} indices but {len(values)} values")
    return SparseVector(indices, values)


def encode_dense(vector: Any) -> pb.DenseVector:
    return pb.DenseVector(values=np.asarray(vector, dtype="<f4").tobytes())


def encode_sparse(vector: Any, what: str = "sparse vector") -> pb.SparseVector:
    """A SparseVector, an (indices, values) pair or {"indices", "values"}; negative indices are refused
    here because packing them as uint32 would silently wrap them into valid term ids."""
    if isinstance(vector, SparseVector):
        indices, values = vector.indices, vector.values
    elif isinstance(vector, Mapping):
        indices, values = vector["indices"], vector["values"]
    else:
        indices, values = vector
    indices = np.asarray(indices)
    if indices.size and (not np.issubdtype(indices.dtype, np.integer) or indices.min() < 0):
        raise InvalidArgument(f"{what}: sparse indices must be non-negative integers")
    return pb.SparseVector(
        indices=indices.astype("<u4").tobytes(), values=np.asarray(values, dtype="<f4").tobytes()
    )


def is_sparse(vector: Any) -> bool:
    if isinstance(vector, SparseVector | Mapping):
        return True
    return isinstance(vector, tuple | list) and len(vector) == 2 and all(np.ndim(part) == 1 for part in vector)


# -- metadata ---------------------------------------------------------------------------------------


def _integral(value: Any) -> Any:
    """Struct numbers are doubles; give whole numbers back as ints, as the caller most likely sent them."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return _integral(json_format.MessageToDict(struct))


def dict_to_struct(data: Mapping[str, Any] | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if data:
        try:
            struct.update(dict(data))
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"metadata must hold JSON values: {exc}") from None
    return struct


def _scalar(value: struct_pb2.Value, key: str) -> str | float | bool:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        return _integral(value.number_value)
    raise InvalidArgument(f"filter on {key!r}: match a string, number or boolean, not {kind or 'nothing'}")


# -- schema -----------------------------------------------------------------------------------------


def schema_from_proto(message: pb.CollectionSchema) -> CollectionSchema:
    dense = []
    for name, config in sorted(message.dense.items()):
        if not config.encoder:
            raise InvalidArgument(f"dense field {name!r}: set encoder (a dense model name or 'precomputed')")
        if config.metric not in METRICS:
            raise InvalidArgument(f"dense field {name!r}: unknown metric value {config.metric}")
        dense.append(
            DenseField(name, config.encoder, int(config.dimension), METRICS[config.metric], config.index or "Flat")
        )
    sparse = []
    for name, config in sorted(message.sparse.items()):
        if not config.encoder:
            raise InvalidArgument(f"sparse field {name!r}: set encoder ('bm25', a sparse model or 'precomputed')")
        params = config.bm25
        given = {k: getattr(params, k) for k in ("k1", "b", "stem") if params.HasField(k)}
        if given and config.encoder != BM25:
            raise InvalidArgument(f"sparse field {name!r}: bm25 parameters only apply to encoder 'bm25'")
        sparse.append(SparseField(name, config.encoder, approximate=not config.exact_only, **given))
    compression = None
    if message.HasField("compression"):
        compression = CompressionOption(message.compression.encoder, int(message.compression.pooling_factor))
    return CollectionSchema(dense=tuple(dense), sparse=tuple(sparse), compression=compression)


def schema_to_proto(schema: CollectionSchema) -> pb.CollectionSchema:
    message = pb.CollectionSchema()
    for f in schema.dense:
        message.dense[f.name].CopyFrom(
            pb.DenseFieldConfig(encoder=f.encoder, dimension=f.dim, metric=METRIC_VALUES[f.metric], index=f.factory)
        )
    for f in schema.sparse:
        bm25 = pb.Bm25Params(k1=f.k1, b=f.b, stem=f.stem) if f.is_bm25 else None
        message.sparse[f.name].CopyFrom(
            pb.SparseFieldConfig(encoder=f.encoder, bm25=bm25, exact_only=not f.approximate)
        )
    if schema.compression is not None:
        message.compression.CopyFrom(
            pb.CompressionOption(encoder=schema.compression.encoder, pooling_factor=schema.compression.pooling_factor)
        )
    return message


# -- filters ----------------------------------------------------------------------------------------


def _condition(message: pb.Condition) -> Match | MatchAny | Range:
    kind = message.WhichOneof("match")
    if kind == "equals":
        return Match(message.key, _scalar(message.equals, message.key))
    if kind == "any_of":
        return MatchAny(message.key, tuple(_scalar(v, message.key) for v in message.any_of.values))
    if kind == "range":
        r = message.range
        bounds = {k: getattr(r, k) for k in ("gt", "gte", "lt", "lte") if r.HasField(k)}
        return Range(message.key, **bounds)
    raise InvalidArgument(f"filter condition on {message.key!r} needs one of equals, any_of, range")


def filter_from_proto(message: pb.Filter) -> Filter | None:
    if not message.must and not message.must_not:
        return None
    return Filter(
        must=tuple(_condition(c) for c in message.must), must_not=tuple(_condition(c) for c in message.must_not)
    )


def _condition_to_proto(spec: Mapping[str, Any]) -> pb.Condition:
    if set(spec) not in ({"key", "match"}, {"key", "any"}, {"key", "range"}):
        raise InvalidArgument(f"filter condition {spec!r} must be {{'key': ..., and one of match/any/range}}")
    message = pb.Condition(key=spec["key"])
    if "match" in spec:
        message.equals.CopyFrom(struct_pb2.Value())
        json_format.ParseDict(spec["match"], message.equals)
    elif "any" in spec:
        message.any_of.CopyFrom(struct_pb2.ListValue())
        message.any_of.extend(list(spec["any"]))
    else:
        message.range.CopyFrom(pb.Range(**spec["range"]))
    return message


def filter_to_proto(spec: Mapping[str, Any] | None) -> pb.Filter | None:
    """The filter message of the engine's plain-data form {"must": [...], "must_not": [...]}."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping) or set(spec) - {"must", "must_not"}:
        raise InvalidArgument("a filter is a map with 'must' and/or 'must_not' lists of conditions")
    return pb.Filter(
        must=[_condition_to_proto(c) for c in spec.get("must", ())],
        must_not=[_condition_to_proto(c) for c in spec.get("must_not", ())],
    )


# -- fusion -----------------------------------------------------------------------------------------


def fusion_from_proto(message: pb.Fusion) -> Fusion:
    if message.WhichOneof("method") == "weighted_sum":
        normalization = message.weighted_sum.normalization
        if normalization not in NORMALIZATIONS:
            raise InvalidArgument(f"unknown normalization value {normalization}; use MIN_MAX or Z_SCORE")
        return WeightedSum(NORMALIZATIONS[normalization])
    return RRF(message.rrf.k) if message.rrf.HasField("k") else RRF()


def fusion_to_proto(fusion: Fusion) -> pb.Fusion:
    if isinstance(fusion, WeightedSum):
        return pb.Fusion(weighted_sum=pb.WeightedSum(normalization=NORMALIZATION_VALUES[fusion.normalization]))
    return pb.Fusion(rrf=pb.Rrf(k=fusion.k))


# -- BM25 term statistics ---------------------------------------------------------------------------


def statistics_from_proto(message: pb.TermStatistics, what: str) -> TermStatistics:
    try:
        return TermStatistics(message.documents, message.tokens, dict(message.df))
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc}") from None


def statistics_to_proto(statistics: TermStatistics) -> pb.TermStatistics:
    return pb.TermStatistics(documents=statistics.documents, tokens=statistics.tokens, df=statistics.df)


def source_scores(hit: pb.Hit) -> dict[str, SourceScore]:
    return {s.source: SourceScore(s.score, s.rank) for s in hit.sources}
