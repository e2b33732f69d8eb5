"""Builds and runs the gRPC server: services, health, reflection, auth, TLS, metrics, shutdown.

Services plug in as modules listed in `SERVICE_MODULES`. Each module exposes

    def register(server: grpc.aio.Server, state: ServerState) -> list[str]   # full service names
    async def startup(state: ServerState) -> None                              # optional

`register` runs before the server starts; `startup` runs after the models have loaded and before the
service's health status turns SERVING (open a store, load indexes...).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ferret.encoders.registry import ModelRegistry
from ferret.server.auth import ApiKeyInterceptor
from ferret.server.config import FerretConfig
from ferret.server.state import ServerState

log = logging.getLogger("ferret.server")

# One line per service module; later services (collections, compress, tools) add theirs here.
SERVICE_MODULES: list[str] = [
    "ferret.server.encoder_service",
    "ferret.server.compress_service",
    "ferret.server.collections_service",
    "ferret.server.tools_service",
]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class FerretServer:
    def __init__(self, config: FerretConfig, service_modules: Sequence[str] = SERVICE_MODULES):
        self.config = config
        self.state = ServerState(config)
        self.modules = [importlib.import_module(m) for m in service_modules]
        self.health = health.aio.HealthServicer()
        self.service_names: list[str] = []
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._server: grpc.aio.Server | None = None
        self._ready: asyncio.Task | None = None

    async def start(self) -> int:
        """Bind and start serving (health NOT_SERVING); models load in the background. Returns the port."""
        settings = self.config.server
        limit = settings.max_message_bytes
        interceptors = [ApiKeyInterceptor(settings.api_key)] if settings.api_key else []
        self._server = server = grpc.aio.server(
            interceptors=interceptors,
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
        )
        for module in self.modules:
            self.service_names += module.register(server, self.state)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        for name in ("", *self.service_names):
            await self.health.set(name, NOT_SERVING)

        address = f"{settings.host}:{settings.port}"
        if settings.tls_cert:
            credentials = grpc.ssl_server_credentials(
                [(Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes())])
            self.port = server.add_secure_port(address, credentials)
        else:
            self.port = server.add_insecure_port(address)
        if settings.metrics_port is not None:
            self.metrics_port = self.state.metrics.serve(settings.host, settings.metrics_port)
        await server.start()
        log.info("listening", extra={"address": f"{settings.host}:{self.port}", "tls": bool(settings.tls_cert),
                                     "auth": bool(settings.api_key), "metrics_port": self.metrics_port})
        self._ready = asyncio.ensure_future(self._load())
        return self.port

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        configs = list(self.config.models)
        self.state.registry = await loop.run_in_executor(None, ModelRegistry.from_configs, configs)
        log.info("models loaded", extra={"models": self.state.registry.names()})
        for module in self.modules:
            if startup := getattr(module, "startup", None):
                await startup(self.state)
        for name in ("", *self.service_names):
            await self.health.set(name, SERVING)
        log.info("serving")

    async def ready(self) -> None:
        """Wait until every service is SERVING; raises the start-up error (e.g. ModelLoadError)."""
        await asyncio.shield(self._ready)

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: report NOT_SERVING, refuse new calls, let in-flight calls finish."""
        await self.health.enter_graceful_shutdown()
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        if self._server is not None:
            await self._server.stop(self.config.server.shutdown_grace_s if grace is None else grace)
        await self.state.close()
        log.info("stopped")

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()


async def serve(config: FerretConfig, service_modules: Sequence[str] = SERVICE_MODULES) -> None:
    """Run until SIGINT/SIGTERM (`ferret serve`). A model that fails to load stops the server with its error."""
    server = FerretServer(config, service_modules)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        ready = asyncio.ensure_future(server.ready())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([ready, stopping], return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            ready.result()  # raise the start-up error, if any
            await stopping
        else:
            ready.cancel()
    finally:
        await server.stop()


class ServerThread:
    """A server on its own event loop in a background thread (tests, the demo, benchmarks)."""

    def __init__(self, config: FerretConfig, service_modules: Sequence[str] = SERVICE_MODULES):
        self.server = FerretServer(config, service_modules)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ferret-server", daemon=True)

    def start(self) -> ServerThread:
        """Bind and start serving (models may still be loading); a no-op when already started."""
        if self._thread.is_alive():
            return self
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=60)
        return self

    @property
    def address(self) -> str:
        return f"{self.server.config.server.host}:{self.server.port}"

    def wait_ready(self, timeout: float = 300) -> None:
        asyncio.run_coroutine_threadsafe(self.server.ready(), self._loop).result(timeout=timeout)

    def stop(self, grace: float | None = None) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(grace), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(grace=1)
