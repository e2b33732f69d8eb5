"""Float arrays as little-endian bytes in float32, bfloat16 or float16: the `ferret.v1.Tensor` message.

numpy has no bfloat16, so bfloat16 travels as the upper 16 bits of each float32 (the format's definition):
encoding rounds to nearest even with torch, decoding shifts the bits back into float32 with numpy alone,
which keeps the client free of torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np

from ferret.errors import InvalidArgument
from ferret.proto.ferret.v1 import compress_pb2 as pb


class WireDtype(StrEnum):
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"


def encode(array: np.ndarray, dtype: WireDtype) -> bytes:
    """Row-major little-endian bytes of `array` rounded (to nearest even) to `dtype`."""
    values = np.ascontiguousarray(array, dtype=np.float32)
    if dtype is WireDtype.FLOAT32:
        return values.astype("<f4", copy=False).tobytes()
    if dtype is WireDtype.FLOAT16:
        return values.astype("<f2").tobytes()
    import torch

    return torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()


def decode(data: bytes, dtype: WireDtype, shape: Sequence[int]) -> np.ndarray:
    """A float32 array of `shape` from bytes written by `encode` (exact: every value fits float32)."""
    shape = tuple(int(s) for s in shape)
    width = 4 if dtype is WireDtype.FLOAT32 else 2
    expected = int(np.prod(shape, dtype=np.int64)) * width
    if len(data) != expected:
        raise InvalidArgument(f"a {dtype.value} tensor of shape {list(shape)} needs {expected} bytes, got {len(data)}")
    if dtype is WireDtype.FLOAT32:
        return np.frombuffer(data, dtype="<f4").astype(np.float32).reshape(shape)
    if dtype is WireDtype.FLOAT16:
        return np.frombuffer(data, dtype="<f2").astype(np.float32).reshape(shape)
    upper = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
    return upper.view(np.float32).reshape(shape)


PROTO_DTYPES = {WireDtype.FLOAT32: pb.TENSOR_DTYPE_FLOAT32, WireDtype.BFLOAT16: pb.TENSOR_DTYPE_BFLOAT16,
                WireDtype.FLOAT16: pb.TENSOR_DTYPE_FLOAT16}
# Enum value -> dtype; UNSPECIFIED means float32.
WIRE_DTYPES = {pb.TENSOR_DTYPE_UNSPECIFIED: WireDtype.FLOAT32, **{v: k for k, v in PROTO_DTYPES.items()}}


def wire_dtype(value: int) -> WireDtype:
    """The dtype of a `TensorDtype` enum value; InvalidArgument for a value this server does not know."""
    if value not in WIRE_DTYPES:
        raise InvalidArgument(f"unknown dtype value {value}; use TENSOR_DTYPE_FLOAT32, TENSOR_DTYPE_BFLOAT16 "
                              "or TENSOR_DTYPE_FLOAT16")
    return WIRE_DTYPES[value]


def to_message(array: np.ndarray, dtype: WireDtype) -> pb.Tensor:
    return pb.Tensor(dtype=PROTO_DTYPES[dtype], shape=list(array.shape), data=encode(array, dtype))


def from_message(tensor: pb.Tensor) -> np.ndarray:
    return decode(tensor.data, wire_dtype(tensor.dtype), tensor.shape)
