from ferret.proto.ferret.v1 import encoder_pb2 as _encoder_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TensorDtype(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TENSOR_DTYPE_UNSPECIFIED: _ClassVar[TensorDtype]
    TENSOR_DTYPE_FLOAT32: _ClassVar[TensorDtype]
    TENSOR_DTYPE_BFLOAT16: _ClassVar[TensorDtype]
    TENSOR_DTYPE_FLOAT16: _ClassVar[TensorDtype]
TENSOR_DTYPE_UNSPECIFIED: TensorDtype
TENSOR_DTYPE_FLOAT32: TensorDtype
TENSOR_DTYPE_BFLOAT16: TensorDtype
TENSOR_DTYPE_FLOAT16: TensorDtype

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: TensorDtype
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[_Union[TensorDtype, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class CompressRequest(_message.Message):
    __slots__ = ("model", "texts", "pooling_factor", "decoder", "dtype", "truncate", "request_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    POOLING_FACTOR_FIELD_NUMBER: _ClassVar[int]
    DECODER_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    pooling_factor: int
    decoder: str
    dtype: TensorDtype
    truncate: _encoder_pb2.TruncatePolicy
    request_id: str
    def __init__(self, model: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., pooling_factor: _Optional[int] = ..., decoder: _Optional[str] = ..., dtype: _Optional[_Union[TensorDtype, str]] = ..., truncate: _Optional[_Union[_encoder_pb2.TruncatePolicy, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CompressedText(_message.Message):
    __slots__ = ("vectors", "m", "num_tokens", "continuation", "continuation_index")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    M_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_INDEX_FIELD_NUMBER: _ClassVar[int]
    vectors: Tensor
    m: int
    num_tokens: int
    continuation: Tensor
    continuation_index: int
    def __init__(self, vectors: _Optional[_Union[Tensor, _Mapping]] = ..., m: _Optional[int] = ..., num_tokens: _Optional[int] = ..., continuation: _Optional[_Union[Tensor, _Mapping]] = ..., continuation_index: _Optional[int] = ...) -> None: ...

class CompressResponse(_message.Message):
    __slots__ = ("model", "decoder", "pooling_factor", "texts", "timing", "tokens", "request_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DECODER_FIELD_NUMBER: _ClassVar[int]
    POOLING_FACTOR_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    decoder: str
    pooling_factor: int
    texts: _containers.RepeatedCompositeFieldContainer[CompressedText]
    timing: _encoder_pb2.Timing
    tokens: int
    request_id: str
    def __init__(self, model: _Optional[str] = ..., decoder: _Optional[str] = ..., pooling_factor: _Optional[int] = ..., texts: _Optional[_Iterable[_Union[CompressedText, _Mapping]]] = ..., timing: _Optional[_Union[_encoder_pb2.Timing, _Mapping]] = ..., tokens: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...
