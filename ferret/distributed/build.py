"""Distributed offline builds on Ray: corpus file -> a sharded collection folder (see
`ferret.indexing.shards`), each shard an ordinary data directory.

Pipeline: Ray Data reads the corpus (`read_text` for JSONL/.gz, `read_parquet`); `map_batches` streams
batches through a pool of encoder actors (one per GPU, or CPU workers), each holding the encoders once and
encoding with the same code as the local build (`encode_documents`); each actor sends every document to
the writer actor of its shard (`shard_of(id)`), which commits it with `Collection.upsert_encoded`, the
local build's write path. Nothing is encoded or indexed by a second implementation.

Failures: Ray restarts a dead encoder or writer actor and retries its calls (`max_restarts`,
`max_task_retries`): a restarted encoder reloads its models and encodes the batch again, a restarted
writer reopens its shard, where every committed batch is durable; upserts replace by id, so a retried
batch writes no duplicates. Resume: a rerun of an unfinished build asks each writer which ids it lacks and
encodes only those. A finished build (manifest `complete`) is a no-op. The tests SIGKILL an encoder and a
writer mid-build, and the driver of a build mid-build before rerunning it.

A killed driver leaves nothing a rerun trips on: the manifest is replaced atomically, the stores are
SQLite (a killed writer's transaction rolls back), and the GCS and raylet of the local Ray it started die
with it (Ray's fate sharing). Its workers outlive it by a few seconds, though, and a writer of theirs
may still commit a batch; so a rerun's writer waits for the shard's data-directory lock, which every
`CollectionManager` holds while open (`shard-NNN/ferret.lock`, `flock`, dropped by the kernel when the
process dies). Without that, a
write the new writer never saw would be missing from the index snapshot it publishes. A second build
writing the same folder at the same time fails after `LOCK_WAIT_S`. Ray is imported only here: the
single-machine build and server never need it.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferret.encoders.registry import ModelConfig, ModelRegistry
from ferret.errors import FailedPrecondition, InvalidArgument, NotFound
from ferret.indexing.build import corpus_format, document_from_record, source_identity
from ferret.indexing.collection import (
    DATA_DIR_LOCK,
    Collection,
    CollectionManager,
    encode_documents,
    field_indexes,
    resolve_schema,
)
from ferret.indexing.locks import ProcessLock
from ferret.indexing.schema import CollectionSchema
from ferret.indexing.shards import ShardManifest, shard_directory, shard_of
from ferret.indexing.store import Document

RETRIES = 3
# The workers of a killed driver's local Ray exit within seconds of losing their raylet; a writer of
# theirs still holding a shard delays a rerun's writer by that much, a live concurrent build fails it.
LOCK_WAIT_S = 60.0


@dataclass(frozen=True)
class ShardedBuildReport:
    collection: str
    shards: int
    documents: int  # live documents over all shards at the end
    added: int  # documents this run added to the shards (live count after minus before)
    seconds: float

    @property
    def docs_per_second(self) -> float:
        return self.added / self.seconds if self.seconds > 0 else 0.0


def _ray():
    try:
        import ray
    except ImportError:
        raise FailedPrecondition(
            "the Ray build needs Ray: pip install 'ferret[distributed]'"
        ) from None
    return ray


class ShardWriter:
    """Owns one shard's data directory (a Ray actor): creates the collection, commits encoded batches.

    Its CollectionManager holds the shard's data-directory lock for the writer's life: the in-memory indexes
    it snapshots at the end must have seen every write to the store, so no other process may write the
    shard meanwhile (a second build into the folder, or the writer of a killed build that is still exiting).
    It waits `lock_wait_s` for the lock."""

    def __init__(self, directory: str, name: str, schema: CollectionSchema, lock_wait_s: float = LOCK_WAIT_S):
        self.manager, self.collection = self._open(directory, name, schema, lock_wait_s)

    @staticmethod
    def _open(
        directory: str, name: str, schema: CollectionSchema, lock_wait_s: float
    ) -> tuple[CollectionManager, Collection]:
        # No encoders here: the vectors arrive encoded, and the schema carries the encoder identities
        # that `ferret serve` checks when it opens the shard with its models.
        manager = CollectionManager(directory, ModelRegistry({}), lock_wait_s=lock_wait_s)
        if name not in manager.list():
            manager.store.create_collection(name, schema)
            # Reopened to load it; whatever another process writes between close and reopen is replayed
            # from the store into the reopened indexes, so the moment without the lock loses nothing.
            manager.close(snapshot=False)
            manager = CollectionManager(directory, ModelRegistry({}), lock_wait_s=lock_wait_s)
        elif manager.get(name).schema.to_json() != schema.to_json():
            manager.close(snapshot=False)
            raise FailedPrecondition(
                f"shard {directory} holds collection {name!r} with another schema; remove the folder"
            )
        return manager, manager.get(name)

    def count(self) -> int:
        return self.collection.count()

    def missing(self, ids: Sequence[str]) -> list[str]:
        present = {d.id for d in self.collection.get(ids)}
        return [i for i in ids if i not in present]

    def upsert(self, documents: Sequence[Document]) -> int:
        self.collection.upsert_encoded(documents)
        return len(documents)

    def finish(self) -> int:
        """Publish the shard's snapshot (fast opens) and close it; returns its document count."""
        count = self.collection.count()
        self.manager.close(snapshot=True)
        return count


class EncodeWorker:
    """One member of the Ray Data actor pool: encoders loaded once, batches encoded and sent to writers."""

    def __init__(
        self,
        models: Sequence[ModelConfig],
        schema: CollectionSchema,
        writers: Sequence[Any],
        corpus: str,
        resuming: bool,
    ):
        self.fields = field_indexes(schema, ModelRegistry.from_configs(list(models)))
        broken = [fi.unavailable for fi in self.fields.values() if fi.unavailable]
        if broken:
            raise FailedPrecondition("; ".join(broken))
        self.writers, self.corpus, self.resuming = list(writers), corpus, resuming
        self.jsonl = corpus_format(Path(corpus)) == "jsonl"

    def __call__(self, batch: Any) -> dict[str, list[int]]:
        import ray

        documents = self._documents(batch)
        if self.resuming:
            documents = self._lacking(documents)
        if not documents:
            return {"written": [0]}
        # One encoder call per batch (full batches for the GPU), then each shard gets its part.
        by_shard: dict[int, list[Document]] = defaultdict(list)
        for document in encode_documents(self.fields, documents):
            by_shard[shard_of(document.id, len(self.writers))].append(document)
        pending = [self.writers[s].upsert.remote(docs) for s, docs in by_shard.items()]
        return {"written": [sum(ray.get(pending))]}

    def _lacking(self, documents: list[Document]) -> list[Document]:
        """The documents that their shard does not hold yet (a resumed build)."""
        import ray

        ids_by_shard: dict[int, list[str]] = defaultdict(list)
        for document in documents:
            ids_by_shard[shard_of(document.id, len(self.writers))].append(document.id)
        lacking = ray.get([self.writers[s].missing.remote(ids) for s, ids in ids_by_shard.items()])
        wanted = {doc_id for ids in lacking for doc_id in ids}
        return [d for d in documents if d.id in wanted]

    def _documents(self, batch: Any) -> list[Document]:
        """Documents of a pyarrow batch: lines of a JSONL file (`read_text`) or Parquet rows."""
        rows = batch.to_pylist()
        if not self.jsonl:
            return [document_from_record(r, self.corpus) for r in rows]
        documents = []
        for row in rows:
            if not row["text"].strip():
                continue
            try:
                record = json.loads(row["text"])
            except json.JSONDecodeError as exc:
                raise InvalidArgument(f"{self.corpus}: a line is not JSON: {exc}") from None
            documents.append(document_from_record(record, self.corpus))
        return documents


def _read(ray: Any, path: Path):
    # Read tasks reserve no CPU: reading is light next to encoding, and a cluster whose CPUs all went to
    # encoder actors would otherwise never schedule the reads that feed them (a deadlock).
    if corpus_format(path) == "parquet":
        return ray.data.read_parquet(str(path), num_cpus=0)
    return ray.data.read_text(str(path), num_cpus=0)


def build_sharded_collection(
    corpus_path: str | Path,
    root: str | Path,
    name: str,
    schema: CollectionSchema | Mapping[str, Any],
    models: Sequence[ModelConfig],
    *,
    shards: int = 2,
    workers: int = 2,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    batch_size: int = 256,
    address: str | None = None,
    progress: bool = True,
) -> ShardedBuildReport:
    """Build (or resume) collection `name` as `shards` shards under `root`, encoding on `workers` Ray actors.

    Connects to the Ray cluster at `address` ("auto", "ray://host:10001", ...) or, when Ray is not yet
    initialised, starts a local one. `models` are the model configs of the encoders the schema names (the
    workers load them). Re-running a finished build is a no-op; another corpus or shard count is
    FailedPrecondition."""
    corpus_path, root = Path(corpus_path), Path(root)
    if not corpus_path.is_file():
        raise NotFound(f"corpus file {corpus_path} does not exist")
    corpus_format(corpus_path)
    for what, value, low, high in (("shards", shards, 1, 4096), ("workers", workers, 1, 4096),
                                   ("batch_size", batch_size, 1, 10_000)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidArgument(f"{what} must be an integer in {low}..{high}, got {value!r}")
    source = source_identity(corpus_path)
    started = time.perf_counter()
    manifest = ShardManifest.load(root)
    if manifest is not None:
        if manifest.collection != name or manifest.source != source or len(manifest.shards) != shards:
            raise FailedPrecondition(
                f"{root} holds a build of collection {manifest.collection!r} in {len(manifest.shards)} "
                f"shards from {json.loads(manifest.source)['path'] if manifest.source else '?'}; "
                "remove the folder to start over"
            )
        if manifest.complete:
            return ShardedBuildReport(name, shards, _count(root, manifest, name), 0, 0.0)
    resuming = manifest is not None
    manifest = ShardManifest(name, [shard_directory(i) for i in range(shards)], source)
    root.mkdir(parents=True, exist_ok=True)
    manifest.save(root)

    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=progress)
    if not isinstance(schema, CollectionSchema):
        schema = CollectionSchema.from_dict(dict(schema))
    resolved = ray.get(
        ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)(_resolve).remote(schema, list(models))
    )
    for directory in manifest.directories(root):
        # Wait here too, where a held lock is a FailedPrecondition for the caller, not an actor's death
        # inside Ray; the writers' CollectionManagers hold the lock for their whole life.
        lock = ProcessLock(directory / DATA_DIR_LOCK)
        lock.acquire(LOCK_WAIT_S, f"data directory {directory}")
        lock.release()
    writer_class = ray.remote(num_cpus=0, max_restarts=RETRIES, max_task_retries=RETRIES)(ShardWriter)
    writers = [writer_class.remote(str(d), name, resolved) for d in manifest.directories(root)]
    before = sum(ray.get([w.count.remote() for w in writers]))
    dataset = _read(ray, corpus_path).map_batches(
        EncodeWorker,
        fn_constructor_kwargs={
            "models": list(models),
            "schema": resolved,
            "writers": writers,
            "corpus": str(corpus_path),
            "resuming": resuming,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker,
        max_restarts=RETRIES,
        max_task_retries=RETRIES,
    )
    for _ in dataset.iter_batches(batch_size=None):
        pass  # the encoders write as they go; their output is only the pipeline's progress
    documents = sum(ray.get([w.finish.remote() for w in writers]))
    for writer in writers:
        ray.kill(writer)
    manifest.complete = True
    manifest.save(root)
    # Counted, not summed from batches: a batch that Ray retried after a kill was written twice (by id).
    return ShardedBuildReport(name, shards, documents, documents - before, time.perf_counter() - started)


def _resolve(schema: CollectionSchema, models: list[ModelConfig]) -> CollectionSchema:
    """The schema with encoder dimensions and identities, resolved where the encoders can load."""
    return resolve_schema(schema, ModelRegistry.from_configs(models))


def _count(root: Path, manifest: ShardManifest, name: str) -> int:
    total = 0
    for directory in manifest.directories(root):
        manager = CollectionManager(directory, ModelRegistry({}))
        try:
            total += manager.get(name).count()
        finally:
            manager.close(snapshot=False)
    return total
