"""Errors that carry their gRPC status.

Library code (encoders, indexes, store) raises these; the server maps each to its status code with the
message unchanged, so the message must say what the caller should fix.
"""

from __future__ import annotations

import grpc


class FerretError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidArgument(FerretError, ValueError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(FerretError, KeyError):
    code = grpc.StatusCode.NOT_FOUND

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class AlreadyExists(FerretError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(FerretError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(FerretError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        # Sent to the client as `retry-after` trailing metadata: when a retry has a fair chance.
        self.retry_after_s = retry_after_s


class DeadlineExceeded(FerretError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unavailable(FerretError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(FerretError):
    """Stored data failed its checksum: never served silently."""

    code = grpc.StatusCode.DATA_LOSS
