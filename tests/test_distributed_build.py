"""Ray build vs local build of the same corpus (real MiniLM on a SciFact slice), resume, refusals, and
real failures: an encoder or writer actor SIGKILLed mid-build, a build driver SIGKILLed and rerun."""

import gzip
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from conftest import require_dataset, start_local_ray

import ferret
from ferret.encoders.registry import DEFAULT_MODELS, ModelRegistry
from ferret.errors import FailedPrecondition, InvalidArgument
from ferret.indexing.build import build_collection
from ferret.indexing.collection import DATA_DIR_LOCK, CollectionManager, Query, SubSearch
from ferret.indexing.locks import ProcessLock
from ferret.indexing.shards import ShardedSearch, ShardManifest, open_local_shards

ray = pytest.importorskip("ray")
from ferret.distributed.build import ShardWriter, build_sharded_collection  # noqa: E402

SCHEMA = {
    "dense": [{"name": "emb", "encoder": "all-MiniLM-L6-v2"}],
    "sparse": [{"name": "bm25", "encoder": "bm25"}],
}
DOCS = 120
# Batches of 8 make 15 commits per MiniLM build, so a failure injected after the first few lands mid-build.
SMALL_BATCH = 8
KILL_AFTER = 16  # durable documents before a kill
# The killed driver builds BM25 only: no model for its workers and the rerun's to import and load, which
# costs tens of seconds on 2 cores. Batches of 2; its first commits trickle in while Ray Data ramps up,
# so a kill after 4 lands mid-build.
BM25_ONLY = {"sparse": SCHEMA["sparse"]}
BM25_BATCH = 2
DRIVER_KILL_AFTER = 4


@pytest.fixture(scope="module")
def ray_cluster():
    start_local_ray()
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = require_dataset("beir/scifact")
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as src, open(path, "w") as out:
        for _, line in zip(range(DOCS), src, strict=False):
            out.write(line)
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for _, line in zip(range(10), f, strict=False)]
    return path, queries


@pytest.fixture(scope="module")
def builds(ray_cluster, corpus, minilm_registry, tmp_path_factory):
    """(local build, uninterrupted Ray build, its report); tests leave both folders as they are."""
    path, _ = corpus
    local_dir, ray_dir = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("sharded")
    build_collection(path, local_dir, "c", SCHEMA, minilm_registry, batch_size=64, progress=False)
    report = build_sharded_collection(
        path, ray_dir, "c", SCHEMA, DEFAULT_MODELS,
        shards=2, workers=2, cpus_per_worker=0.5, batch_size=64, progress=False,
    )
    return local_dir, ray_dir, report


@contextmanager
def sharded_search(root: Path, registry: ModelRegistry) -> Iterator[ShardedSearch]:
    """Search over a finished 2-shard build, in process."""
    manifest, managers = open_local_shards(root, registry)
    search = None
    try:
        assert manifest.complete and len(managers) == 2
        shards = {f"s{i}": m.get("c") for i, m in enumerate(managers)}
        search = ShardedSearch(shards, bm25_fields=shards["s0"].schema.bm25_fields)
        yield search
    finally:
        if search is not None:
            search.close()
        for m in managers:
            m.close(snapshot=False)


def hits(searcher, field: str, text: str, limit: int = 10) -> list[tuple[str, float]]:
    query = Query([SubSearch(field, text=text, limit=limit)], limit=limit)
    return [(h.id, h.score) for h in searcher.query(query).hits]


def stored_ids(root: Path, live_only: bool = True) -> list[str]:
    """Document ids in the shard stores under `root`, read-only (safe while a build writes); with
    live_only=False also the rows that a later upsert of the same id replaced."""
    ids = []
    for db_path in sorted(root.glob("shard-*/ferret.db")):
        try:
            db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        except sqlite3.Error:
            continue  # a shard whose store is being created
        try:
            where = "WHERE deleted_version IS NULL" if live_only else ""
            ids += [row[0] for row in db.execute(f"SELECT doc_id FROM documents {where}")]
        except sqlite3.OperationalError:
            pass  # no tables yet
        finally:
            db.close()
    return ids


def durable_at_least(root: Path, count: int) -> bool:
    return len(stored_ids(root)) >= count


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def assert_same_as_uninterrupted(
    root: Path, uninterrupted: Path, corpus, registry: ModelRegistry, fields: tuple[str, ...] = ("emb", "bm25")
) -> None:
    """Every corpus document exactly once over the shards, and the uninterrupted build's top-10 (ids and
    scores) in `fields` for every query; a dense index must also hold every document."""
    path, queries = corpus
    with open(path, encoding="utf-8") as f:
        corpus_ids = sorted(json.loads(line)["_id"] for line in f)
    assert sorted(stored_ids(root)) == corpus_ids
    with sharded_search(root, registry) as got, sharded_search(uninterrupted, registry) as expected:
        if "emb" in fields:
            assert sorted(i for i, _ in hits(got, "emb", queries[0], limit=DOCS)) == corpus_ids
        for field in fields:
            for text in queries:
                want, have = hits(expected, field, text), hits(got, field, text)
                assert [i for i, _ in have] == [i for i, _ in want]
                np.testing.assert_allclose([s for _, s in have], [s for _, s in want], rtol=1e-5)


def test_ray_build_returns_the_local_builds_top10(builds, corpus, minilm_registry):
    local_dir, ray_dir, report = builds
    assert (report.shards, report.documents, report.added) == (2, DOCS, DOCS)
    local = CollectionManager(local_dir, minilm_registry)
    try:
        with sharded_search(ray_dir, minilm_registry) as sharded:
            counts = [c.count() for c in sharded.shards.values()]
            assert sum(counts) == DOCS and min(counts) > DOCS // 4  # both shards hold a fair part
            for text in corpus[1]:
                for field in ("emb", "bm25"):  # BM25 with the shards' statistics summed: equal, not close
                    expected, got = hits(local.get("c"), field, text), hits(sharded, field, text)
                    assert [i for i, _ in got] == [i for i, _ in expected]
                    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5)
    finally:
        local.close(snapshot=False)


def test_rerun_is_a_noop_and_an_interrupted_build_resumes(builds, corpus, tmp_path):
    ray_dir = tmp_path / "sharded"
    shutil.copytree(builds[1], ray_dir)  # the uninterrupted build stays as it is for the other tests
    again = build_sharded_collection(corpus[0], ray_dir, "c", SCHEMA, DEFAULT_MODELS, shards=2, progress=False)
    assert (again.added, again.documents) == (0, DOCS)
    # An interrupted build: the manifest is not complete and shard 0 lacks some documents.
    manifest = ShardManifest.load(ray_dir)
    manifest.complete = False
    manifest.save(ray_dir)
    shard = CollectionManager(manifest.directories(ray_dir)[0], ModelRegistry({}))
    lost = [d.id for d in shard.store.live_documents("c", 5).__next__()]
    shard.get("c").delete(lost)
    shard.close()
    resumed = build_sharded_collection(
        corpus[0], ray_dir, "c", SCHEMA, DEFAULT_MODELS, shards=2, workers=1, batch_size=64, progress=False
    )
    assert (resumed.added, resumed.documents) == (len(lost), DOCS)
    assert ShardManifest.load(ray_dir).complete


def test_another_corpus_or_shard_count_is_refused(builds, corpus, tmp_path):
    _, ray_dir, _ = builds
    with pytest.raises(FailedPrecondition, match="remove the folder"):
        build_sharded_collection(corpus[0], ray_dir, "c", SCHEMA, DEFAULT_MODELS, shards=3, progress=False)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"_id": "x", "text": "y"}) + "\n")
    with pytest.raises(FailedPrecondition, match="remove the folder"):
        build_sharded_collection(other, ray_dir, "c", SCHEMA, DEFAULT_MODELS, shards=2, progress=False)


def test_encoder_workers_read_jsonl_lines_and_parquet_rows(tmp_path):
    import pyarrow as pa

    from ferret.distributed.build import EncodeWorker
    from ferret.indexing.schema import CollectionSchema

    schema = CollectionSchema.from_dict({"dense": [{"name": "v", "encoder": "precomputed", "dim": 2}]})
    record = {"_id": "a", "title": "T", "text": "body", "metadata": {"k": 1}, "vectors": {"v": [1.0, 0.0]}}
    lines = pa.table({"text": [json.dumps(record), "  "]})
    jsonl = EncodeWorker([], schema, [], str(tmp_path / "c.jsonl"), resuming=False)._documents(lines)
    parquet = EncodeWorker([], schema, [], str(tmp_path / "c.parquet"), resuming=False)._documents(
        pa.Table.from_pylist([record])
    )
    for documents in (jsonl, parquet):
        assert [(d.id, d.text, d.metadata, d.vectors) for d in documents] == [
            ("a", "T body", {"k": 1, "title": "T"}, {"v": [1.0, 0.0]})
        ]
    with pytest.raises(InvalidArgument, match="not JSON"):
        EncodeWorker([], schema, [], "c.jsonl", resuming=False)._documents(pa.table({"text": ["{bad"]}))


def live_actor_pid(class_name: str) -> int:
    """Pid of a live actor of this job whose class name contains `class_name`. Read from the GCS actor
    table: `ray.util.state` would need the dashboard, which these tests do not start."""
    job = ray.get_runtime_context().get_job_id()
    for actor in ray._private.state.actors(actor_state_name="ALIVE").values():
        if class_name in actor["ActorClassName"] and actor["JobID"] == job:
            return int(actor["Pid"])
    raise LookupError(f"no live {class_name} actor")


class KillActorsMidBuild(threading.Thread):
    """For each (durable documents, actor class) in `kills`: once that many documents are durable under
    `root`, SIGKILL the process of a live actor of that class; `durable_at_kill` records the count after."""

    def __init__(self, root: Path, kills: list[tuple[int, str]]):
        super().__init__(daemon=True)
        self.root, self.kills = root, kills
        self.durable_at_kill: list[int] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for after, class_name in self.kills:
                wait_until(partial(durable_at_least, self.root, after), 300, f"{after} durable documents")
                os.kill(live_actor_pid(class_name), signal.SIGKILL)
                self.durable_at_kill.append(len(stored_ids(self.root)))
        except BaseException as exc:  # reported by the test thread
            self.error = exc


def test_build_survives_an_encoder_and_a_writer_killed_mid_build(builds, corpus, minilm_registry, tmp_path):
    # One build for both kills: each new encoder process costs seconds of imports on 2 cores.
    root = tmp_path / "sharded"
    killer = KillActorsMidBuild(root, [(KILL_AFTER, "EncodeWorker"), (3 * KILL_AFTER, "ShardWriter")])
    killer.start()
    report = build_sharded_collection(
        corpus[0], root, "c", SCHEMA, DEFAULT_MODELS,
        shards=2, workers=1, cpus_per_worker=2.0, batch_size=SMALL_BATCH, progress=False,
    )
    killer.join(timeout=10)
    if killer.error:
        raise killer.error
    assert len(killer.durable_at_kill) == 2 and max(killer.durable_at_kill) < DOCS  # both kills landed mid-build
    assert (report.documents, report.added) == (DOCS, DOCS)
    assert_same_as_uninterrupted(root, builds[1], corpus, minilm_registry)


def session_processes(session: int) -> list[int]:
    """Pids of the live processes of a session (Linux /proc): a killed build's Ray cluster."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if fields[0] != "Z" and int(fields[3]) == session:
            pids.append(int(stat.parent.name))
    return pids


def child_env() -> dict[str, str]:
    """This process's environment for a child that imports this checkout of ferret and, without an
    address, starts its own local Ray."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(ferret.__file__).parents[1]), env.get("PYTHONPATH")) if p)
    return env


def test_a_killed_build_resumes_with_only_the_missing_documents(builds, corpus, minilm_registry, tmp_path):
    root, log = tmp_path / "sharded", tmp_path / "build.log"
    command = [
        sys.executable, "-m", "ferret.cli", "index", "build", str(corpus[0]), "--data-dir", str(root),
        "--collection", "c", "--bm25", "bm25", "--engine", "ray", "--shards", "2", "--workers", "1",
        "--batch-size", str(BM25_BATCH), "--quiet",
    ]
    with open(log, "w") as out:
        child = subprocess.Popen(command, env=child_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def written() -> bool:
            assert child.poll() is None, f"the build exited ({child.returncode}) before the kill: {log.read_text()}"
            return durable_at_least(root, DRIVER_KILL_AFTER)

        wait_until(written, 300, f"{DRIVER_KILL_AFTER} durable documents")
        child.send_signal(signal.SIGKILL)
        child.wait()
        # Its Ray workers outlive it for a moment; count once they are gone (a rerun's writers wait for
        # them the same way, on each shard's data-directory lock).
        for directory in ShardManifest.load(root).directories(root):
            lock = ProcessLock(directory / DATA_DIR_LOCK)
            lock.acquire(60, f"shard {directory}")
            lock.release()
        durable = len(stored_ids(root))
        assert DRIVER_KILL_AFTER <= durable < DOCS and not ShardManifest.load(root).complete

        report = build_sharded_collection(
            corpus[0], root, "c", BM25_ONLY, [], shards=2, workers=1, batch_size=BM25_BATCH, progress=False
        )
        assert (report.added, report.documents) == (DOCS - durable, DOCS)
        assert len(stored_ids(root, live_only=False)) == DOCS  # no document was written twice
        assert_same_as_uninterrupted(root, builds[1], corpus, minilm_registry, fields=("bm25",))
    finally:
        if child.poll() is None:
            child.kill()
        for pid in session_processes(child.pid):  # what the killed build's Ray left running
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


HOLD_LOCK = """
import sys, time
from ferret.indexing.locks import ProcessLock
lock = ProcessLock(sys.argv[1])
lock.acquire(0, "the lock")
print("held", flush=True)
time.sleep(60)
"""


def test_a_shard_has_one_writer_at_a_time(ray_cluster, corpus, tmp_path, monkeypatch):
    from ferret.indexing.schema import CollectionSchema

    schema = CollectionSchema.from_dict({"dense": [{"name": "v", "encoder": "precomputed", "dim": 2}]})
    directory = tmp_path / "shard-000"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(directory / DATA_DIR_LOCK)], stdout=subprocess.PIPE, text=True,
        env=child_env(),
    )
    try:
        assert holder.stdout.readline() == "held\n"
        held = rf"shard-000 is held by another process \(pid {holder.pid} on "
        with pytest.raises(FailedPrecondition, match=held):
            ShardWriter(str(directory), "c", schema, lock_wait_s=0.3)
        # A build into that folder says so to its caller (not as an actor's death inside Ray).
        monkeypatch.setattr("ferret.distributed.build.LOCK_WAIT_S", 0.3)
        with pytest.raises(FailedPrecondition, match=held):
            build_sharded_collection(corpus[0], tmp_path, "c", BM25_ONLY, DEFAULT_MODELS, shards=1, progress=False)
    finally:
        holder.kill()
        holder.wait()
    writer = ShardWriter(str(directory), "c", schema, lock_wait_s=5)  # the SIGKILL left no stale lock
    assert writer.finish() == 0
    again = ShardWriter(str(directory), "c", schema, lock_wait_s=0)  # finish() released it
    assert again.finish() == 0
