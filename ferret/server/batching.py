"""Dynamic batching of model calls across concurrent requests, by a token budget.

Every request splits into items (one per text) with a cost in tokens. One `Batcher` per model call
keeps a bounded queue of items and one worker that repeatedly forms a batch and runs it in a thread:

- the oldest waiting item always goes into the next batch (no starvation);
- the rest of the batch is taken from items of the same key (the call's options) closest in length
  to it, so one batch holds texts of similar length and padding stays small;
- a batch grows while texts x longest text (its padded size) stays within `max_batch_tokens` and it
  holds at most `max_batch_texts` texts;
- a request that would overfill the queue fails at once with RESOURCE_EXHAUSTED and a retry-after;
- an item whose deadline has passed is dropped from the queue with DEADLINE_EXCEEDED, and the items
  of a cancelled request are dropped without running.

The batcher is generic over the call: `run(key, payloads) -> results` (one result per payload), so
dense and sparse embedding and context compression share it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ferret.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted
from ferret.server.config import BatchingConfig
from ferret.server.metrics import Metrics

log = logging.getLogger("ferret.batching")


@dataclass(frozen=True)
class ItemTiming:
    batch_id: int
    queue_ns: int
    inference_ns: int


@dataclass
class _Item:
    seq: int
    key: Hashable
    payload: Any
    cost: int
    deadline: float | None
    enqueued: int
    future: asyncio.Future


class Batcher:
    def __init__(
        self,
        name: str,
        run: Callable[[Hashable, list[Any]], Sequence[Any]],
        config: BatchingConfig,
        metrics: Metrics,
    ):
        self.name = name
        self._run = run
        self._config = config
        self._metrics = metrics
        self._pending: list[_Item] = []
        self._wakeup = asyncio.Event()
        self._seq = itertools.count()
        self._batch_ids = itertools.count()
        # One model call at a time per model: the model already uses every core it is given.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")
        self._seconds_per_text = 0.0  # running estimate, for retry-after
        self._worker = asyncio.get_running_loop().create_task(self._work(), name=f"batcher-{name}")

    @property
    def depth(self) -> int:
        return len(self._pending)

    async def submit(
        self, key: Hashable, payloads: Sequence[Any], costs: Sequence[int], deadline: float | None = None
    ) -> list[tuple[Any, ItemTiming]]:
        """Queue `payloads` (each with its cost in tokens) and wait for their results, in order.

        `deadline` is in `loop.time()` seconds. Raises ResourceExhausted when the queue has no room.
        """
        limit = self._config.max_queue
        if len(payloads) > limit:
            raise InvalidArgument(f"a request of {len(payloads)} texts exceeds the server's queue of {limit} "
                                  "texts per model; split it into smaller requests or use EmbedStream")
        if self.depth + len(payloads) > limit:
            self._metrics.dropped.labels(self.name, "queue_full").inc(len(payloads))
            retry = max(0.05, self.depth * self._seconds_per_text)
            raise ResourceExhausted(f"model {self.name!r} has {self.depth} texts queued (limit {limit}); "
                                    f"retry after {retry:.2f} s or send smaller requests", retry_after_s=retry)
        loop = asyncio.get_running_loop()
        now = time.perf_counter_ns()
        items = [_Item(next(self._seq), key, p, max(int(c), 1), deadline, now, loop.create_future())
                 for p, c in zip(payloads, costs, strict=True)]
        self._pending.extend(items)
        self._metrics.queue_depth.labels(self.name).set(self.depth)
        self._wakeup.set()
        # Drop at the deadline itself, not only when the model is next free.
        expiry = loop.call_at(deadline, self._expire) if deadline is not None else None
        try:
            return list(await asyncio.gather(*(i.future for i in items)))
        finally:
            if expiry is not None:
                expiry.cancel()
            self._forget(items)

    def _forget(self, items: list[_Item]) -> None:
        """Drop the items of an abandoned request (cancelled call, failed sibling) that still wait."""
        if all(i.future.done() and not i.future.cancelled() and i.future.exception() is None for i in items):
            return  # the normal path: every item ran
        for item in items:
            if not item.future.done():
                item.future.cancel()
        mine = {id(i) for i in items}
        kept = [i for i in self._pending if id(i) not in mine]
        if len(kept) != len(self._pending):
            self._metrics.dropped.labels(self.name, "cancelled").inc(len(self._pending) - len(kept))
            self._pending = kept
            self._metrics.queue_depth.labels(self.name).set(self.depth)

    def _drop_expired(self) -> None:
        now = asyncio.get_running_loop().time()
        kept = []
        for item in self._pending:
            if item.deadline is not None and item.deadline <= now:
                self._metrics.dropped.labels(self.name, "deadline").inc()
                if not item.future.done():
                    item.future.set_exception(DeadlineExceeded(
                        f"the deadline passed while the text waited in the queue of model {self.name!r}; "
                        "allow a longer deadline or send fewer texts at once"))
            elif not item.future.done():
                kept.append(item)
        self._pending = kept

    def _expire(self) -> None:
        self._drop_expired()
        self._metrics.queue_depth.labels(self.name).set(self.depth)

    def _take_batch(self) -> list[_Item]:
        """Remove and return the next batch, sorted by cost (see the module docstring)."""
        self._drop_expired()
        if not self._pending:
            return []
        oldest = self._pending[0]
        same_key = sorted((i for i in self._pending if i.key == oldest.key), key=lambda i: (i.cost, i.seq))
        lo = hi = same_key.index(oldest)
        budget, max_texts = self._config.max_batch_tokens, self._config.max_batch_texts
        while hi - lo + 1 < max_texts:
            n = hi - lo + 2
            grow_left = same_key[hi].cost * n if lo > 0 else None
            grow_right = same_key[hi + 1].cost * n if hi + 1 < len(same_key) else None
            options = [c for c in (grow_left, grow_right) if c is not None and c <= budget]
            if not options:
                break
            if grow_left is not None and grow_left == min(options):
                lo -= 1
            else:
                hi += 1
        batch = same_key[lo:hi + 1]
        taken = {id(i) for i in batch}
        self._pending = [i for i in self._pending if id(i) not in taken]
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = self._take_batch()
            self._metrics.queue_depth.labels(self.name).set(self.depth)
            if not batch:
                continue
            self._metrics.batch_texts.labels(self.name).observe(len(batch))
            self._metrics.batch_tokens.labels(self.name).observe(len(batch) * batch[-1].cost)
            started = time.perf_counter_ns()
            try:
                results = await loop.run_in_executor(self._executor, self._run, batch[0].key,
                                                     [i.payload for i in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"model call {self.name!r} returned {len(results)} results "
                                       f"for {len(batch)} inputs")
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request, the worker goes on
                log.warning("batch of %d texts failed on %s: %s", len(batch), self.name, exc)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            finished = time.perf_counter_ns()
            self._seconds_per_text = (finished - started) / 1e9 / len(batch)
            batch_id = next(self._batch_ids)
            for item, result in zip(batch, results, strict=True):
                if not item.future.done():
                    item.future.set_result((result, ItemTiming(batch_id, started - item.enqueued,
                                                               finished - started)))

    async def close(self) -> None:
        """Stop the worker; anything still queued fails as cancelled."""
        self._worker.cancel()
        for item in self._pending:
            item.future.cancel()
        self._pending = []
        self._executor.shutdown(wait=False, cancel_futures=True)
