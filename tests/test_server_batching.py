"""The token-budget batcher on its own: batch shapes, ordering, back-pressure, deadlines, failures."""

import asyncio
import threading

import pytest

from ferret.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted
from ferret.server.batching import Batcher
from ferret.server.config import BatchingConfig
from ferret.server.metrics import Metrics


class Recorder:
    """A model call that records its batches; it waits on `gate` so tests can fill the queue first."""

    def __init__(self):
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, key, payloads):
        self.entered.set()
        assert self.gate.wait(10)
        self.batches.append(list(payloads))
        if "fail" in payloads:
            raise RuntimeError("bad batch")
        return [f"{key}:{p}" for p in payloads]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _blocked_batcher(config: BatchingConfig):
    """A batcher whose model is busy with a first request, so later submissions stay queued."""
    model = Recorder()
    model.gate.clear()
    batcher = Batcher("test", model, config, Metrics())
    first = asyncio.ensure_future(batcher.submit("k", ["first"], [1]))
    while not model.entered.is_set():
        await asyncio.sleep(0.01)
    return model, batcher, first


async def _release(model: Recorder, batcher: Batcher, first) -> list[list[str]]:
    """Let the model run, finish the first request, stop; the batches the model saw."""
    model.gate.set()
    await first
    await batcher.close()
    return model.batches


def test_results_come_back_in_request_order_with_timing():
    async def main():
        model = Recorder()
        batcher = Batcher("test", model, BatchingConfig(), Metrics())
        done = await batcher.submit("k", ["a", "bbb", "cc"], [1, 3, 2])
        await batcher.close()
        return done

    done = run(main())
    assert [r for r, _ in done] == ["k:a", "k:bbb", "k:cc"]
    assert all(t.inference_ns > 0 and t.queue_ns >= 0 for _, t in done)


def test_batches_respect_the_padded_token_budget_and_group_similar_lengths():
    async def main():
        model, batcher, first = await _blocked_batcher(BatchingConfig(max_batch_tokens=40, max_batch_texts=100))
        # Interleaved short (cost 2) and long (cost 10) texts from two requests.
        a = asyncio.ensure_future(batcher.submit("k", ["s1", "L1", "s2", "L2"], [2, 10, 2, 10]))
        b = asyncio.ensure_future(batcher.submit("k", ["s3", "L3", "s4", "L4"], [2, 10, 2, 10]))
        while batcher.depth < 8:
            await asyncio.sleep(0.01)
        model.gate.set()
        await asyncio.gather(first, a, b)
        await batcher.close()
        return model.batches

    batches = run(main())[1:]
    costs = {"s": 2, "L": 10}
    for batch in batches:
        assert len(batch) * max(costs[t[0]] for t in batch) <= 40
        assert len({t[0] for t in batch}) == 1, f"short and long texts mixed in {batch}"
    assert sorted(t for b in batches for t in b) == ["L1", "L2", "L3", "L4", "s1", "s2", "s3", "s4"]
    # The oldest (s1) leads with its length peers; the long texts fill the next batch (4 x 10 = 40).
    assert batches == [["s1", "s2", "s3", "s4"], ["L1", "L2", "L3", "L4"]]


def test_a_text_over_the_budget_still_runs_alone():
    async def main():
        model = Recorder()
        batcher = Batcher("test", model, BatchingConfig(max_batch_tokens=8), Metrics())
        done = await batcher.submit("k", ["huge"], [100])
        await batcher.close()
        return done, model.batches

    done, batches = run(main())
    assert done[0][0] == "k:huge" and batches == [["huge"]]


def test_different_keys_never_share_a_batch():
    async def main():
        model, batcher, first = await _blocked_batcher(BatchingConfig())
        a = asyncio.ensure_future(batcher.submit("x", ["a1", "a2"], [1, 1]))
        b = asyncio.ensure_future(batcher.submit("y", ["b1"], [1]))
        while batcher.depth < 3:
            await asyncio.sleep(0.01)
        model.gate.set()
        results = await asyncio.gather(a, b)
        await first
        await batcher.close()
        return results, model.batches

    (a, b), batches = run(main())
    assert [r for r, _ in a] == ["x:a1", "x:a2"] and [r for r, _ in b] == ["y:b1"]
    assert sorted(batches[1:]) == [["a1", "a2"], ["b1"]]


def test_full_queue_refuses_at_once_and_oversized_requests_are_invalid():
    async def main():
        model, batcher, first = await _blocked_batcher(BatchingConfig(max_queue=3))
        queued = asyncio.ensure_future(batcher.submit("k", ["a", "b", "c"], [1, 1, 1]))
        while batcher.depth < 3:
            await asyncio.sleep(0.01)
        with pytest.raises(ResourceExhausted) as full:
            await batcher.submit("k", ["d"], [1])
        with pytest.raises(InvalidArgument):
            await batcher.submit("k", ["1", "2", "3", "4"], [1, 1, 1, 1])
        model.gate.set()
        await asyncio.gather(first, queued)
        await batcher.close()
        return full.value

    error = run(main())
    assert error.retry_after_s > 0


def test_deadline_passed_in_the_queue_is_dropped_without_running():
    async def main():
        model, batcher, first = await _blocked_batcher(BatchingConfig())
        loop = asyncio.get_running_loop()
        with pytest.raises(DeadlineExceeded):
            await batcher.submit("k", ["late"], [1], deadline=loop.time() + 0.05)
        depth = batcher.depth
        return depth, await _release(model, batcher, first)

    depth, batches = run(main())
    assert depth == 0
    assert batches == [["first"]]


def test_a_failed_batch_fails_its_requests_and_the_worker_goes_on():
    async def main():
        model = Recorder()
        batcher = Batcher("test", model, BatchingConfig(), Metrics())
        with pytest.raises(RuntimeError, match="bad batch"):
            await batcher.submit("k", ["fail"], [1])
        done = await batcher.submit("k", ["ok"], [1])
        await batcher.close()
        return done

    assert run(main())[0][0] == "k:ok"


def test_cancelled_request_leaves_the_queue():
    async def main():
        model, batcher, first = await _blocked_batcher(BatchingConfig())
        waiting = asyncio.ensure_future(batcher.submit("k", ["gone"], [1]))
        while batcher.depth < 1:
            await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        depth = batcher.depth
        return depth, await _release(model, batcher, first)

    depth, batches = run(main())
    assert depth == 0 and batches == [["first"]]
