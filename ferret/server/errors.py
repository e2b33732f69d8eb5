"""One place that turns exceptions into gRPC statuses, for every service.

Decorate each servicer method with `@rpc`: a `FerretError` becomes its `.code` with its message (plus
`retry-after` for RESOURCE_EXHAUSTED); anything else becomes INTERNAL with the traceback logged, so no
input can take the server down. It also records the request count and latency metrics. The servicer
must have a `state` attribute (the `ServerState`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import Callable

import grpc

from ferret.errors import FerretError, ResourceExhausted

log = logging.getLogger("ferret.server")


def status_of(exc: BaseException) -> grpc.StatusCode:
    return exc.code if isinstance(exc, FerretError) else grpc.StatusCode.INTERNAL


def error_status(exc: FerretError) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    """The status code, message and trailing metadata (`retry-after`) that a FerretError maps to."""
    metadata: tuple[tuple[str, str], ...] = ()
    if isinstance(exc, ResourceExhausted) and exc.retry_after_s is not None:
        metadata = (("retry-after", f"{exc.retry_after_s:.3f}"),)
    return exc.code, str(exc), metadata


async def abort_with(context: grpc.aio.ServicerContext, exc: Exception, method: str) -> None:
    """Abort the call with the status `exc` maps to (always raises)."""
    if isinstance(exc, FerretError):
        code, details, metadata = error_status(exc)
        await context.abort(code, details, trailing_metadata=metadata)
    log.error("unexpected error in %s", method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}: {type(exc).__name__}: {exc}")


class _Call:
    """Metrics of one call: its status is known only once it ends."""

    def __init__(self, servicer, method: str):
        self.metrics = servicer.state.metrics
        self.method = method
        self.status = "OK"
        self.started = time.perf_counter()

    def failed(self, code: grpc.StatusCode) -> None:
        self.status = code.name

    def done(self) -> None:
        seconds = time.perf_counter() - self.started
        self.metrics.requests.labels(self.method, self.status).inc()
        self.metrics.latency.labels(self.method).observe(seconds)
        log.debug("rpc", extra={"method": self.method, "code": self.status, "ms": round(seconds * 1000, 3)})


@contextlib.asynccontextmanager
async def _handled(servicer, context: grpc.aio.ServicerContext, method: str):
    call = _Call(servicer, method)
    try:
        yield
    except grpc.aio.AbortError:  # the handler aborted with its own status
        call.failed(context.code() or grpc.StatusCode.UNKNOWN)
        raise
    except asyncio.CancelledError:
        call.failed(grpc.StatusCode.CANCELLED)
        raise
    except Exception as exc:  # noqa: BLE001 - mapped to a status, never kills the server
        call.failed(status_of(exc))
        await abort_with(context, exc, method)
    finally:
        call.done()


def rpc(method: Callable) -> Callable:
    """Error mapping and metrics for a unary or server-streaming servicer method."""
    name = method.__name__

    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def streaming(self, request, context):
            async with _handled(self, context, name):
                async for item in method(self, request, context):
                    yield item

        return streaming

    @functools.wraps(method)
    async def unary(self, request, context):
        async with _handled(self, context, name):
            return await method(self, request, context)

    return unary
