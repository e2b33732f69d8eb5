from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    SIDE_QUERY: _ClassVar[Side]
    SIDE_DOCUMENT: _ClassVar[Side]

class TruncatePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRUNCATE_POLICY_UNSPECIFIED: _ClassVar[TruncatePolicy]
    TRUNCATE_POLICY_END: _ClassVar[TruncatePolicy]
    TRUNCATE_POLICY_ERROR: _ClassVar[TruncatePolicy]

class ModelKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_KIND_UNSPECIFIED: _ClassVar[ModelKind]
    MODEL_KIND_DENSE: _ClassVar[ModelKind]
    MODEL_KIND_SPARSE: _ClassVar[ModelKind]
    MODEL_KIND_COMPRESSOR: _ClassVar[ModelKind]
SIDE_UNSPECIFIED: Side
SIDE_QUERY: Side
SIDE_DOCUMENT: Side
TRUNCATE_POLICY_UNSPECIFIED: TruncatePolicy
TRUNCATE_POLICY_END: TruncatePolicy
TRUNCATE_POLICY_ERROR: TruncatePolicy
MODEL_KIND_UNSPECIFIED: ModelKind
MODEL_KIND_DENSE: ModelKind
MODEL_KIND_SPARSE: ModelKind
MODEL_KIND_COMPRESSOR: ModelKind

class DenseMatrix(_message.Message):
    __slots__ = ("rows", "dim", "data")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    rows: int
    dim: int
    data: bytes
    def __init__(self, rows: _Optional[int] = ..., dim: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("queue_ns", "tokenize_ns", "inference_ns", "total_ns")
    QUEUE_NS_FIELD_NUMBER: _ClassVar[int]
    TOKENIZE_NS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_NS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_NS_FIELD_NUMBER: _ClassVar[int]
    queue_ns: int
    tokenize_ns: int
    inference_ns: int
    total_ns: int
    def __init__(self, queue_ns: _Optional[int] = ..., tokenize_ns: _Optional[int] = ..., inference_ns: _Optional[int] = ..., total_ns: _Optional[int] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("model", "texts", "side", "instruction", "dimensions", "normalize", "truncate", "request_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    side: Side
    instruction: str
    dimensions: int
    normalize: bool
    truncate: TruncatePolicy
    request_id: str
    def __init__(self, model: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., side: _Optional[_Union[Side, str]] = ..., instruction: _Optional[str] = ..., dimensions: _Optional[int] = ..., normalize: _Optional[bool] = ..., truncate: _Optional[_Union[TruncatePolicy, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("model", "embeddings", "timing", "tokens", "request_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    embeddings: DenseMatrix
    timing: Timing
    tokens: int
    request_id: str
    def __init__(self, model: _Optional[str] = ..., embeddings: _Optional[_Union[DenseMatrix, _Mapping]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., tokens: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class EmbedSparseRequest(_message.Message):
    __slots__ = ("model", "texts", "side", "instruction", "truncate", "return_tokens")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    RETURN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    side: Side
    instruction: str
    truncate: TruncatePolicy
    return_tokens: bool
    def __init__(self, model: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., side: _Optional[_Union[Side, str]] = ..., instruction: _Optional[str] = ..., truncate: _Optional[_Union[TruncatePolicy, str]] = ..., return_tokens: _Optional[bool] = ...) -> None: ...

class SparseEmbedding(_message.Message):
    __slots__ = ("indices", "values", "tokens")
    INDICES_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    indices: bytes
    values: bytes
    tokens: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, indices: _Optional[bytes] = ..., values: _Optional[bytes] = ..., tokens: _Optional[_Iterable[str]] = ...) -> None: ...

class EmbedSparseResponse(_message.Message):
    __slots__ = ("model", "embeddings", "timing", "tokens")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    model: str
    embeddings: _containers.RepeatedCompositeFieldContainer[SparseEmbedding]
    timing: Timing
    tokens: int
    def __init__(self, model: _Optional[str] = ..., embeddings: _Optional[_Iterable[_Union[SparseEmbedding, _Mapping]]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., tokens: _Optional[int] = ...) -> None: ...

class TokenizeRequest(_message.Message):
    __slots__ = ("model", "texts", "side", "instruction", "return_tokens")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    RETURN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    side: Side
    instruction: str
    return_tokens: bool
    def __init__(self, model: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., side: _Optional[_Union[Side, str]] = ..., instruction: _Optional[str] = ..., return_tokens: _Optional[bool] = ...) -> None: ...

class TokenizedText(_message.Message):
    __slots__ = ("ids", "tokens")
    IDS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., tokens: _Optional[_Iterable[str]] = ...) -> None: ...

class TokenizeResponse(_message.Message):
    __slots__ = ("model", "texts")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    texts: _containers.RepeatedCompositeFieldContainer[TokenizedText]
    def __init__(self, model: _Optional[str] = ..., texts: _Optional[_Iterable[_Union[TokenizedText, _Mapping]]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelDescription(_message.Message):
    __slots__ = ("name", "family", "kind", "dimension", "vocab_size", "max_length", "sides", "matryoshka_dims", "supports_instructions", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SIDES_FIELD_NUMBER: _ClassVar[int]
    MATRYOSHKA_DIMS_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    name: str
    family: str
    kind: ModelKind
    dimension: int
    vocab_size: int
    max_length: int
    sides: _containers.RepeatedScalarFieldContainer[Side]
    matryoshka_dims: _containers.RepeatedScalarFieldContainer[int]
    supports_instructions: bool
    extra: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., family: _Optional[str] = ..., kind: _Optional[_Union[ModelKind, str]] = ..., dimension: _Optional[int] = ..., vocab_size: _Optional[int] = ..., max_length: _Optional[int] = ..., sides: _Optional[_Iterable[_Union[Side, str]]] = ..., matryoshka_dims: _Optional[_Iterable[int]] = ..., supports_instructions: _Optional[bool] = ..., extra: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelDescription]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelDescription, _Mapping]]] = ...) -> None: ...
