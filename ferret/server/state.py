"""What every service of one server shares: config, models, batchers, metrics, worker threads."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ferret.encoders.registry import ModelRegistry
from ferret.errors import Unavailable
from ferret.indexing.collection import CollectionManager
from ferret.server.batching import Batcher
from ferret.server.config import FerretConfig
from ferret.server.metrics import Metrics

T = TypeVar("T")


class ServerState:
    def __init__(self, config: FerretConfig, metrics: Metrics | None = None):
        self.config = config
        self.metrics = metrics or Metrics()
        self.registry: ModelRegistry | None = None  # set once the models have loaded
        self.collections: CollectionManager | None = None  # set by the collections service's startup
        # Tokenisation and other short blocking work: never on the event loop.
        self.cpu_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ferret-cpu")
        self._batchers: dict[str, Batcher] = {}

    def models(self) -> ModelRegistry:
        """The loaded models; UNAVAILABLE while they are still loading."""
        if self.registry is None:
            raise Unavailable("models are still loading; retry when the health service reports SERVING")
        return self.registry

    def collection_manager(self) -> CollectionManager:
        """The collections of `[server] data_dir`; UNAVAILABLE until they are open."""
        if self.collections is None:
            raise Unavailable("collections are still opening; retry when the health service reports SERVING")
        return self.collections

    def batcher(self, name: str, run: Callable[[Hashable, list[Any]], Sequence[Any]]) -> Batcher:
        """The batcher of one model call (e.g. "all-MiniLM-L6-v2/embed"), created on first use."""
        batcher = self._batchers.get(name)
        if batcher is None:
            batcher = self._batchers[name] = Batcher(name, run, self.config.batching, self.metrics)
        return batcher

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call in the CPU worker threads."""
        return await asyncio.get_running_loop().run_in_executor(self.cpu_executor, functools.partial(fn, *args))

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
        if self.collections is not None:  # snapshots make the next start fast; the store is the truth
            await self.in_thread(self.collections.close)
            self.collections = None
        self.cpu_executor.shutdown(wait=False, cancel_futures=True)
        self.metrics.close()
