from google.protobuf import struct_pb2 as _struct_pb2
from ferret.proto.ferret.v1 import compress_pb2 as _compress_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    COSINE: _ClassVar[Metric]
    INNER_PRODUCT: _ClassVar[Metric]
    L2: _ClassVar[Metric]

class Normalization(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NORMALIZATION_UNSPECIFIED: _ClassVar[Normalization]
    MIN_MAX: _ClassVar[Normalization]
    Z_SCORE: _ClassVar[Normalization]
METRIC_UNSPECIFIED: Metric
COSINE: Metric
INNER_PRODUCT: Metric
L2: Metric
NORMALIZATION_UNSPECIFIED: Normalization
MIN_MAX: Normalization
Z_SCORE: Normalization

class DenseFieldConfig(_message.Message):
    __slots__ = ("encoder", "dimension", "metric", "index")
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    encoder: str
    dimension: int
    metric: Metric
    index: str
    def __init__(self, encoder: _Optional[str] = ..., dimension: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., index: _Optional[str] = ...) -> None: ...

class Bm25Params(_message.Message):
    __slots__ = ("k1", "b", "stem")
    K1_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    STEM_FIELD_NUMBER: _ClassVar[int]
    k1: float
    b: float
    stem: bool
    def __init__(self, k1: _Optional[float] = ..., b: _Optional[float] = ..., stem: _Optional[bool] = ...) -> None: ...

class SparseFieldConfig(_message.Message):
    __slots__ = ("encoder", "bm25", "exact_only")
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    BM25_FIELD_NUMBER: _ClassVar[int]
    EXACT_ONLY_FIELD_NUMBER: _ClassVar[int]
    encoder: str
    bm25: Bm25Params
    exact_only: bool
    def __init__(self, encoder: _Optional[str] = ..., bm25: _Optional[_Union[Bm25Params, _Mapping]] = ..., exact_only: _Optional[bool] = ...) -> None: ...

class CompressionOption(_message.Message):
    __slots__ = ("encoder", "pooling_factor")
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    POOLING_FACTOR_FIELD_NUMBER: _ClassVar[int]
    encoder: str
    pooling_factor: int
    def __init__(self, encoder: _Optional[str] = ..., pooling_factor: _Optional[int] = ...) -> None: ...

class CollectionSchema(_message.Message):
    __slots__ = ("dense", "sparse", "compression")
    class DenseEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: DenseFieldConfig
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[DenseFieldConfig, _Mapping]] = ...) -> None: ...
    class SparseEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SparseFieldConfig
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SparseFieldConfig, _Mapping]] = ...) -> None: ...
    DENSE_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    dense: _containers.MessageMap[str, DenseFieldConfig]
    sparse: _containers.MessageMap[str, SparseFieldConfig]
    compression: CompressionOption
    def __init__(self, dense: _Optional[_Mapping[str, DenseFieldConfig]] = ..., sparse: _Optional[_Mapping[str, SparseFieldConfig]] = ..., compression: _Optional[_Union[CompressionOption, _Mapping]] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "schema")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    name: str
    schema: CollectionSchema
    def __init__(self, name: _Optional[str] = ..., schema: _Optional[_Union[CollectionSchema, _Mapping]] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("name", "schema", "version", "count", "aliases")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    name: str
    schema: CollectionSchema
    version: int
    count: int
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., schema: _Optional[_Union[CollectionSchema, _Mapping]] = ..., version: _Optional[int] = ..., count: _Optional[int] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class GetCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionInfo]
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionInfo, _Mapping]]] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class AliasOperation(_message.Message):
    __slots__ = ("create", "delete")
    CREATE_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    create: CreateAlias
    delete: DeleteAlias
    def __init__(self, create: _Optional[_Union[CreateAlias, _Mapping]] = ..., delete: _Optional[_Union[DeleteAlias, _Mapping]] = ...) -> None: ...

class CreateAlias(_message.Message):
    __slots__ = ("alias", "collection")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    alias: str
    collection: str
    def __init__(self, alias: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class DeleteAlias(_message.Message):
    __slots__ = ("alias",)
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    alias: str
    def __init__(self, alias: _Optional[str] = ...) -> None: ...

class UpdateAliasesRequest(_message.Message):
    __slots__ = ("operations",)
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    operations: _containers.RepeatedCompositeFieldContainer[AliasOperation]
    def __init__(self, operations: _Optional[_Iterable[_Union[AliasOperation, _Mapping]]] = ...) -> None: ...

class UpdateAliasesResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAliasesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Alias(_message.Message):
    __slots__ = ("alias", "collection")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    alias: str
    collection: str
    def __init__(self, alias: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class ListAliasesResponse(_message.Message):
    __slots__ = ("aliases",)
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    aliases: _containers.RepeatedCompositeFieldContainer[Alias]
    def __init__(self, aliases: _Optional[_Iterable[_Union[Alias, _Mapping]]] = ...) -> None: ...

class DenseVector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: bytes
    def __init__(self, values: _Optional[bytes] = ...) -> None: ...

class SparseVector(_message.Message):
    __slots__ = ("indices", "values")
    INDICES_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    indices: bytes
    values: bytes
    def __init__(self, indices: _Optional[bytes] = ..., values: _Optional[bytes] = ...) -> None: ...

class Document(_message.Message):
    __slots__ = ("id", "text", "metadata", "dense", "sparse")
    class DenseEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: DenseVector
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[DenseVector, _Mapping]] = ...) -> None: ...
    class SparseEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SparseVector
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SparseVector, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DENSE_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    metadata: _struct_pb2.Struct
    dense: _containers.MessageMap[str, DenseVector]
    sparse: _containers.MessageMap[str, SparseVector]
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., dense: _Optional[_Mapping[str, DenseVector]] = ..., sparse: _Optional[_Mapping[str, SparseVector]] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "documents")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    documents: _containers.RepeatedCompositeFieldContainer[Document]
    def __init__(self, collection: _Optional[str] = ..., documents: _Optional[_Iterable[_Union[Document, _Mapping]]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class WriteResponse(_message.Message):
    __slots__ = ("collection", "version", "count")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    version: int
    count: int
    def __init__(self, collection: _Optional[str] = ..., version: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "ids", "with_vectors")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    with_vectors: bool
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., with_vectors: _Optional[bool] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("collection", "version", "documents", "missing_ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    version: int
    documents: _containers.RepeatedCompositeFieldContainer[Document]
    missing_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., version: _Optional[int] = ..., documents: _Optional[_Iterable[_Union[Document, _Mapping]]] = ..., missing_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: Filter
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("collection", "version", "count")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    version: int
    count: int
    def __init__(self, collection: _Optional[str] = ..., version: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("must", "must_not")
    MUST_FIELD_NUMBER: _ClassVar[int]
    MUST_NOT_FIELD_NUMBER: _ClassVar[int]
    must: _containers.RepeatedCompositeFieldContainer[Condition]
    must_not: _containers.RepeatedCompositeFieldContainer[Condition]
    def __init__(self, must: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., must_not: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("key", "equals", "any_of", "range")
    KEY_FIELD_NUMBER: _ClassVar[int]
    EQUALS_FIELD_NUMBER: _ClassVar[int]
    ANY_OF_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    key: str
    equals: _struct_pb2.Value
    any_of: _struct_pb2.ListValue
    range: Range
    def __init__(self, key: _Optional[str] = ..., equals: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., any_of: _Optional[_Union[_struct_pb2.ListValue, _Mapping]] = ..., range: _Optional[_Union[Range, _Mapping]] = ...) -> None: ...

class Range(_message.Message):
    __slots__ = ("gt", "gte", "lt", "lte")
    GT_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LT_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    gt: float
    gte: float
    lt: float
    lte: float
    def __init__(self, gt: _Optional[float] = ..., gte: _Optional[float] = ..., lt: _Optional[float] = ..., lte: _Optional[float] = ...) -> None: ...

class TermStatistics(_message.Message):
    __slots__ = ("documents", "tokens", "df")
    class DfEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    DF_FIELD_NUMBER: _ClassVar[int]
    documents: int
    tokens: int
    df: _containers.ScalarMap[str, int]
    def __init__(self, documents: _Optional[int] = ..., tokens: _Optional[int] = ..., df: _Optional[_Mapping[str, int]] = ...) -> None: ...

class TermStatisticsRequest(_message.Message):
    __slots__ = ("collection", "field", "texts")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    field: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., field: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ...) -> None: ...

class TermStatisticsResponse(_message.Message):
    __slots__ = ("collection", "statistics")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    STATISTICS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    statistics: TermStatistics
    def __init__(self, collection: _Optional[str] = ..., statistics: _Optional[_Union[TermStatistics, _Mapping]] = ...) -> None: ...

class SubSearch(_message.Message):
    __slots__ = ("field", "text", "vector", "sparse_vector", "limit", "weight", "encoder", "exact", "name", "statistics")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    SPARSE_VECTOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATISTICS_FIELD_NUMBER: _ClassVar[int]
    field: str
    text: str
    vector: DenseVector
    sparse_vector: SparseVector
    limit: int
    weight: float
    encoder: str
    exact: bool
    name: str
    statistics: TermStatistics
    def __init__(self, field: _Optional[str] = ..., text: _Optional[str] = ..., vector: _Optional[_Union[DenseVector, _Mapping]] = ..., sparse_vector: _Optional[_Union[SparseVector, _Mapping]] = ..., limit: _Optional[int] = ..., weight: _Optional[float] = ..., encoder: _Optional[str] = ..., exact: _Optional[bool] = ..., name: _Optional[str] = ..., statistics: _Optional[_Union[TermStatistics, _Mapping]] = ...) -> None: ...

class Rrf(_message.Message):
    __slots__ = ("k",)
    K_FIELD_NUMBER: _ClassVar[int]
    k: float
    def __init__(self, k: _Optional[float] = ...) -> None: ...

class WeightedSum(_message.Message):
    __slots__ = ("normalization",)
    NORMALIZATION_FIELD_NUMBER: _ClassVar[int]
    normalization: Normalization
    def __init__(self, normalization: _Optional[_Union[Normalization, str]] = ...) -> None: ...

class Fusion(_message.Message):
    __slots__ = ("rrf", "weighted_sum")
    RRF_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_SUM_FIELD_NUMBER: _ClassVar[int]
    rrf: Rrf
    weighted_sum: WeightedSum
    def __init__(self, rrf: _Optional[_Union[Rrf, _Mapping]] = ..., weighted_sum: _Optional[_Union[WeightedSum, _Mapping]] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("collection", "searches", "fusion", "filter", "limit", "offset", "with_text", "with_metadata", "compressed_for", "compressed_dtype", "allow_partial")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SEARCHES_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    WITH_TEXT_FIELD_NUMBER: _ClassVar[int]
    WITH_METADATA_FIELD_NUMBER: _ClassVar[int]
    COMPRESSED_FOR_FIELD_NUMBER: _ClassVar[int]
    COMPRESSED_DTYPE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    collection: str
    searches: _containers.RepeatedCompositeFieldContainer[SubSearch]
    fusion: Fusion
    filter: Filter
    limit: int
    offset: int
    with_text: bool
    with_metadata: bool
    compressed_for: str
    compressed_dtype: _compress_pb2.TensorDtype
    allow_partial: bool
    def __init__(self, collection: _Optional[str] = ..., searches: _Optional[_Iterable[_Union[SubSearch, _Mapping]]] = ..., fusion: _Optional[_Union[Fusion, _Mapping]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., with_text: _Optional[bool] = ..., with_metadata: _Optional[bool] = ..., compressed_for: _Optional[str] = ..., compressed_dtype: _Optional[_Union[_compress_pb2.TensorDtype, str]] = ..., allow_partial: _Optional[bool] = ...) -> None: ...

class SourceScore(_message.Message):
    __slots__ = ("source", "score", "rank")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    source: str
    score: float
    rank: int
    def __init__(self, source: _Optional[str] = ..., score: _Optional[float] = ..., rank: _Optional[int] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "score", "sources", "text", "metadata", "version", "compressed")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPRESSED_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    sources: _containers.RepeatedCompositeFieldContainer[SourceScore]
    text: str
    metadata: _struct_pb2.Struct
    version: int
    compressed: _compress_pb2.CompressedText
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., sources: _Optional[_Iterable[_Union[SourceScore, _Mapping]]] = ..., text: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., version: _Optional[int] = ..., compressed: _Optional[_Union[_compress_pb2.CompressedText, _Mapping]] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("collection", "version", "hits", "time_ms", "compressed_for", "pooling_factor", "unavailable_shards")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    COMPRESSED_FOR_FIELD_NUMBER: _ClassVar[int]
    POOLING_FACTOR_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_SHARDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    version: int
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    time_ms: float
    compressed_for: str
    pooling_factor: int
    unavailable_shards: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., version: _Optional[int] = ..., hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., time_ms: _Optional[float] = ..., compressed_for: _Optional[str] = ..., pooling_factor: _Optional[int] = ..., unavailable_shards: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchQueryRequest(_message.Message):
    __slots__ = ("queries",)
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[QueryRequest]
    def __init__(self, queries: _Optional[_Iterable[_Union[QueryRequest, _Mapping]]] = ...) -> None: ...

class BatchQueryResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[QueryResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[QueryResponse, _Mapping]]] = ...) -> None: ...
