"""Collections: documents in the durable store, one index per field, and the search over them.

Write path: encode the texts (outside any lock), commit to the store (durable; this is the
acknowledgement), then apply the same change to the in-memory indexes under the collection's write
lock, so a search sees the store and the indexes at one version. Read path: filter -> allowed row ids,
the sub-searches run concurrently on a thread pool, fusion, offset/limit, documents fetched for the page.

On open a collection loads its index snapshot (checksums verified; DataLoss otherwise) and replays the
store's changes after the snapshot's watermark, or rebuilds every index from the store when there is
no snapshot.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferret.encoders.base import CompressedText, EncoderKind
from ferret.encoders.registry import ModelRegistry
from ferret.errors import DataLoss, FailedPrecondition, InvalidArgument, NotFound
from ferret.indexing.compression import DocumentCompressor
from ferret.indexing.fields import (
    BM25FieldIndex,
    FieldIndex,
    SubSearch,
    bm25_identity,
    encoder_identity,
    field_index,
)
from ferret.indexing.filters import Filter, parse_filter
from ferret.indexing.fusion import RRF, Fusion, SourceHits, SourceScore, check_weights, fuse
from ferret.indexing.locks import ProcessLock, ReadWriteLock
from ferret.indexing.schema import COMPRESSED_FIELD, PRECOMPUTED, CollectionSchema, DenseField
from ferret.indexing.snapshot import Manifest, load_snapshot, publish_snapshot, remove_snapshots
from ferret.indexing.store import Document, DocumentStore, StoredDocument, WriteResult

if TYPE_CHECKING:
    from ferret.indexing.bm25 import TermStatistics

log = logging.getLogger(__name__)

MAX_LIMIT = 10_000
MAX_SUBSEARCHES = 16
MAX_STATISTICS_TEXTS = 1024
REBUILD_BATCH = 2048


@dataclass(frozen=True)
class Query:
    searches: Sequence[SubSearch]
    fusion: Fusion = RRF()
    filter: Filter | Mapping[str, Any] | None = None
    limit: int = 10
    offset: int = 0
    with_text: bool = False
    with_metadata: bool = False
    # A decoder of the collection's compressor: hits come back with their compressed text projected for it.
    compressed_for: str | None = None


@dataclass
class Hit:
    id: str
    score: float  # fused score; with a single sub-search, that source's own score
    sources: dict[str, SourceScore]
    text: str | None = None
    metadata: dict[str, Any] | None = None
    version: int = 0  # collection version of the document's last write
    compressed: CompressedText | None = None  # in the decoder's hidden size, with its <Cont>


@dataclass
class QueryResult:
    version: int
    hits: list[Hit] = field(default_factory=list)


def _check_limit(what: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= value <= MAX_LIMIT:
        raise InvalidArgument(f"{what} must be an integer in {low}..{MAX_LIMIT}, got {value!r}")


def check_statistics_texts(texts: Sequence[str]) -> list[str]:
    texts = list(texts)
    if not 1 <= len(texts) <= MAX_STATISTICS_TEXTS:
        raise InvalidArgument(f"term statistics need 1..{MAX_STATISTICS_TEXTS} query texts, got {len(texts)}")
    if not all(isinstance(t, str) for t in texts):
        raise InvalidArgument("term statistics: every query text must be a string")
    return texts


def field_indexes(schema: CollectionSchema, registry: ModelRegistry) -> dict[str, FieldIndex]:
    """An empty index per field of the schema, each with its encoder."""
    return {f.name: field_index(f, schema, registry) for f in (*schema.dense, *schema.sparse)}


def encode_documents(
    fields: Mapping[str, FieldIndex],
    documents: Sequence[Document],
    compressor: DocumentCompressor | None = None,
) -> list[Document]:
    """Documents with the vectors of every encoder-backed field (and, with a compressor, their compressed
    representation) filled in from their texts."""
    documents = list(documents)
    if not documents:
        raise InvalidArgument("an upsert needs at least one document")
    texts = [d.text if isinstance(d.text, str) else "" for d in documents]
    computed: dict[str, list[Any]] = {}
    for name, fi in fields.items():
        supplied = [d.id for d in documents if name in d.vectors]
        if fi.field.encoder != PRECOMPUTED and supplied:
            raise InvalidArgument(
                f"field {name!r} is computed by encoder {fi.field.encoder!r}; do not send "
                f"vectors for it (documents {supplied[:3]})"
            )
        vectors = fi.encode(texts)
        if vectors is not None:
            computed[name] = vectors
    if compressor is not None:
        if any(COMPRESSED_FIELD in d.vectors for d in documents):
            raise InvalidArgument("the compressed representation is computed by the collection; do not send it")
        computed[COMPRESSED_FIELD] = compressor.compress([d.id for d in documents], texts)
    if not computed:
        return documents
    return [
        replace(d, vectors={**d.vectors, **{n: v[i] for n, v in computed.items()}})
        for i, d in enumerate(documents)
    ]


class Collection:
    """One collection. Thread-safe; use `CollectionManager` to create, open and drop collections."""

    def __init__(
        self,
        store: DocumentStore,
        name: str,
        registry: ModelRegistry,
        index_root: Path,
        executor: Executor | None = None,
    ):
        self.store, self.name, self.index_root = store, name, Path(index_root)
        record = store.collection(name)
        self.schema = record.schema
        self.version = 0  # the store version the indexes reflect
        self._registry = registry
        self._executor = executor
        self._lock = ReadWriteLock()
        self._fields: dict[str, FieldIndex] = {}
        compression = self.schema.compression
        self._compressor = None if compression is None else DocumentCompressor(
            compression, self.schema.encoders.get(COMPRESSED_FIELD, {}), registry
        )
        with self._lock.write():
            self._open()

    # -- opening, snapshots, rebuilds -----------------------------------------------------------------

    def _new_fields(self) -> dict[str, FieldIndex]:
        return field_indexes(self.schema, self._registry)

    def _identities(self) -> dict[str, dict[str, str]]:
        return {name: {"kind": type(fi).__name__, **fi.identity} for name, fi in self._fields.items()}

    def _open(self) -> None:
        self._fields = self._new_fields()
        manifest = load_snapshot(self.index_root)  # DataLoss propagates: never serve a corrupt index
        if manifest is not None and manifest.fields == self._identities():
            for name, fi in self._fields.items():
                fi.load(manifest.directory / name)
            self.version = manifest.watermark
            self._catch_up()
        else:
            if manifest is not None:
                log.warning(
                    "collection %r: snapshot fields %s differ from the schema; rebuilding from the store",
                    self.name,
                    manifest.fields,
                )
            self._rebuild_from_store()

    def _catch_up(self) -> None:
        changes = self.store.changes_since(self.name, self.version)
        for fi in self._fields.values():
            fi.delete(changes.removed)
            fi.add(changes.added)
        self.version = changes.version

    def _rebuild_from_store(self) -> None:
        self._fields = self._new_fields()
        self.version = self.store.version(self.name)  # no writer runs during a rebuild: we hold the lock
        for batch in self.store.live_documents(self.name, REBUILD_BATCH):
            for fi in self._fields.values():
                fi.add(batch)

    def rebuild(self) -> None:
        """Forget the snapshots and rebuild every index from the store (the recovery from DataLoss)."""
        with self._lock.write():
            remove_snapshots(self.index_root)
            self._rebuild_from_store()

    def snapshot(self) -> Manifest:
        """Publish the indexes as the current snapshot (atomic, checksummed; writes wait meanwhile), then
        drop the store rows the snapshot made obsolete (replaced or deleted documents)."""
        with self._lock.read():
            manifest = publish_snapshot(
                self.index_root,
                self.version,
                self._identities(),
                {name: fi.save for name, fi in self._fields.items()},
            )
            self.store.purge_tombstones(self.name, manifest.watermark)
            return manifest

    # -- writes ---------------------------------------------------------------------------------------

    def upsert(self, documents: Sequence[Document], meta: Mapping[str, str] | None = None) -> WriteResult:
        """Insert or replace documents; returns once they are durable (and searchable)."""
        return self.upsert_encoded(encode_documents(self._fields, documents, self._compressor), meta)

    def upsert_encoded(
        self, documents: Sequence[Document], meta: Mapping[str, str] | None = None
    ) -> WriteResult:
        """Insert or replace documents that `encode_documents` already encoded with this collection's
        encoders (elsewhere, e.g. on the encoder workers of a distributed build)."""
        documents = list(documents)
        if not documents:
            raise InvalidArgument("an upsert needs at least one document")
        with self._lock.write():
            result = self.store.upsert(self.name, documents, meta)
            self._apply(result)
        return result

    def _apply(self, result: WriteResult) -> None:
        """Mirror a committed write into the indexes, reading the rows back in the exact form the store
        keeps them (validated float32); if that fails the indexes are rebuilt from the store."""
        try:
            stored = self.store.rows(result.row_ids, with_vectors=True)
            added = [stored[int(r)] for r in result.row_ids]
            for fi in self._fields.values():
                fi.delete(result.replaced_row_ids)
                fi.add(added)
            self.version = result.version
        except Exception:
            log.exception("collection %r: index update failed after a committed write; rebuilding", self.name)
            self._rebuild_from_store()
            raise

    def delete(self, ids: Sequence[str]) -> WriteResult:
        with self._lock.write():
            result = self.store.delete(self.name, ids)
            try:
                for fi in self._fields.values():
                    fi.delete(result.replaced_row_ids)
                self.version = result.version
            except Exception:
                log.exception(
                    "collection %r: index delete failed after a committed write; rebuilding", self.name
                )
                self._rebuild_from_store()
                raise
        return result

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[StoredDocument]:
        return self.store.get(self.name, ids, with_vectors)

    def count(self, filter: Filter | Mapping[str, Any] | None = None) -> int:
        """Live documents, or those a metadata filter admits."""
        condition = filter if isinstance(filter, Filter | None) else parse_filter(filter)
        if condition is None:
            return self.store.count(self.name)
        return self.store.count(self.name, *condition.to_sql())

    def query(self, query: Query) -> QueryResult:
        """Run the sub-searches (concurrently), fuse, filter, page; hits carry per-source score and rank."""
        searches = self._check_query(query)
        if query.compressed_for is not None:
            self._compressor_for_queries().check_decoder(query.compressed_for)
        condition = query.filter if isinstance(query.filter, Filter | None) else parse_filter(query.filter)
        with self._lock.read():
            allowed = self.store.select_rows(self.name, *condition.to_sql()) if condition else None
            tasks = [(self._fields[s.field], s) for s in searches]
            if self._executor is not None and len(tasks) > 1:
                futures = [self._executor.submit(fi.search, s, allowed) for fi, s in tasks]
                results = [f.result() for f in futures]
            else:
                results = [fi.search(s, allowed) for fi, s in tasks]
            sources = [
                SourceHits(s.source, ids, scores, s.weight)
                for s, (ids, scores) in zip(searches, results, strict=True)
            ]
            if len(sources) == 1:
                only = sources[0]
                fused = [
                    (int(i), float(sc), {only.name: SourceScore(float(sc), r)})
                    for r, (i, sc) in enumerate(zip(only.ids.tolist(), only.scores.tolist(), strict=True), 1)
                ]
            else:
                fused = [(h.id, h.score, h.sources) for h in fuse(sources, query.fusion)]
            page = fused[query.offset : query.offset + query.limit]
            rows = self.store.rows([p[0] for p in page])
            stored = self.store.compressed([p[0] for p in page]) if query.compressed_for is not None else {}
            version = self.version
        compressed = dict(zip(stored, self._compressor.project(list(stored.values()), query.compressed_for),
                              strict=True)) if stored else {}
        hits = [
            Hit(
                rows[r].id,
                score,
                per_source,
                rows[r].text if query.with_text else None,
                rows[r].metadata if query.with_metadata else None,
                rows[r].version,
                compressed.get(r),
            )
            for r, score, per_source in page
        ]
        return QueryResult(version, hits)

    def query_batch(self, queries: Sequence[Query]) -> list[QueryResult]:
        return [self.query(q) for q in queries]

    def term_statistics(self, field: str, texts: Sequence[str]) -> TermStatistics:
        """The statistics of BM25 field `field` for the analysed terms of `texts`: summed over the shards of a
        collection, they make each shard score a sub-search with those texts like the unsharded collection."""
        texts = check_statistics_texts(texts)
        with self._lock.read():
            return self._bm25_field(field, "term statistics").term_statistics(texts)

    def _bm25_field(self, name: str, what: str) -> BM25FieldIndex:
        self.schema.field(name)  # NotFound naming the fields that exist
        fi = self._fields[name]
        if not isinstance(fi, BM25FieldIndex):
            kind = "a dense" if isinstance(fi.field, DenseField) else f"a sparse ({fi.field.encoder})"
            raise InvalidArgument(
                f"{what} exist only for BM25 fields; {name!r} is {kind} field (BM25 fields: "
                f"{', '.join(sorted(self.schema.bm25_fields)) or 'none'})"
            )
        return fi

    def _compressor_for_queries(self) -> DocumentCompressor:
        if self._compressor is None:
            raise FailedPrecondition(
                f"collection {self.name!r} keeps no compressed documents; create it with "
                "compression = {encoder = <an ARC-Encoder model>} to ask for compressed hits"
            )
        return self._compressor

    def _check_query(self, query: Query) -> list[SubSearch]:
        searches = list(query.searches)
        if not 1 <= len(searches) <= MAX_SUBSEARCHES:
            raise InvalidArgument(f"a query needs 1..{MAX_SUBSEARCHES} sub-searches, got {len(searches)}")
        _check_limit("limit", query.limit, 1)
        _check_limit("offset", query.offset, 0)
        if query.limit + query.offset > MAX_LIMIT:
            raise InvalidArgument(f"limit + offset must be at most {MAX_LIMIT}")
        for s in searches:
            self.schema.field(s.field)  # NotFound naming the fields that exist
            _check_limit(f"limit of sub-search {s.source!r}", s.limit, 1)
            if s.statistics is not None:
                self._bm25_field(s.field, f"sub-search {s.source!r}: term statistics")
        check_weights([SourceHits(s.source, np.zeros(0, np.int64), np.zeros(0), s.weight) for s in searches])
        return searches


def resolve_schema(schema: CollectionSchema, registry: ModelRegistry) -> CollectionSchema:
    """The schema with each encoder field's dimension and encoder identity taken from the loaded encoder."""
    encoders: dict[str, dict[str, str]] = {}
    dense = []
    for f in schema.dense:
        if f.encoder != PRECOMPUTED:
            encoder = registry.get(f.encoder)
            if encoder.info.kind.value != "dense":
                raise InvalidArgument(
                    f"dense field {f.name!r}: encoder {f.encoder!r} is {encoder.info.kind.value}"
                )
            if f.dim and f.dim != encoder.info.dimension:
                raise InvalidArgument(
                    f"dense field {f.name!r}: dim={f.dim} but encoder {f.encoder!r} makes "
                    f"{encoder.info.dimension}-dimensional vectors; leave dim out"
                )
            f = replace(f, dim=encoder.info.dimension)
            encoders[f.name] = encoder_identity(encoder)
        dense.append(f)
    for f in schema.sparse:
        if f.is_bm25:
            encoders[f.name] = bm25_identity(f)
        elif f.encoder != PRECOMPUTED:
            encoder = registry.get(f.encoder)
            if encoder.info.kind.value != "sparse":
                raise InvalidArgument(
                    f"sparse field {f.name!r}: encoder {f.encoder!r} is {encoder.info.kind.value}"
                )
            encoders[f.name] = encoder_identity(encoder)
    compression = schema.compression
    if compression is not None:
        compressor = registry.get(compression.encoder)
        if compressor.info.kind is not EncoderKind.COMPRESSOR:
            raise InvalidArgument(
                f"compression: encoder {compression.encoder!r} is {compressor.info.kind.value}; "
                "name an ARC-Encoder (compressor) model"
            )
        compression = replace(compression, pooling_factor=compression.pooling_factor or compressor.pooling_factor)
        encoders[COMPRESSED_FIELD] = encoder_identity(compressor)
    return CollectionSchema(dense=tuple(dense), sparse=schema.sparse, compression=compression, encoders=encoders)


# Held (flock) by the one process that has a data directory open; the kernel drops it when that process dies.
DATA_DIR_LOCK = "ferret.lock"


class CollectionManager:
    """All collections of a data directory: create, drop, list, open by name or alias.

    Layout: `<data_dir>/ferret.db` (the store) and `<data_dir>/indexes/<collection>/` (snapshots).
    A collection whose snapshot fails its checksum is kept out of service: every access raises that
    DataLoss until `rebuild(name)` restores it from the store. One process at a time opens a data directory
    (`DATA_DIR_LOCK`); another waits `lock_wait_s`, then gets FailedPrecondition naming the holder."""

    def __init__(
        self, data_dir: str | Path, registry: ModelRegistry, max_workers: int = 4, lock_wait_s: float = 5.0
    ):
        self.data_dir = Path(data_dir)
        # One process at a time: each keeps in-memory indexes of the store and publishes snapshots of them,
        # so a second writer's documents would be missing from the first one's indexes and snapshots.
        self._process_lock = ProcessLock(self.data_dir / DATA_DIR_LOCK)
        self._process_lock.acquire(lock_wait_s, f"data directory {self.data_dir}")
        try:
            self.store = DocumentStore(self.data_dir / "ferret.db")
        except BaseException:
            self._process_lock.release()
            raise
        self.registry = registry
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ferret-search")
        self._lock = threading.Lock()
        self._collections: dict[str, Collection] = {}
        self._failed: dict[str, DataLoss] = {}
        self._aliases = self.store.aliases()
        for record in self.store.list_collections():
            self._open(record.name)

    def _index_root(self, name: str) -> Path:
        return self.data_dir / "indexes" / name

    def _open(self, name: str) -> None:
        try:
            self._collections[name] = Collection(
                self.store, name, self.registry, self._index_root(name), self._executor
            )
            self._failed.pop(name, None)
        except DataLoss as exc:
            log.error("collection %r is out of service: %s", name, exc)
            self._failed[name] = exc

    def create(self, name: str, schema: CollectionSchema | Mapping[str, Any]) -> Collection:
        """Create a collection; encoder fields take their dimension and identity from the loaded encoder."""
        if not isinstance(schema, CollectionSchema):
            schema = CollectionSchema.from_dict(dict(schema))
        schema = resolve_schema(schema, self.registry)
        with self._lock:
            self.store.create_collection(name, schema)
            shutil.rmtree(self._index_root(name), ignore_errors=True)  # leftovers of a dropped namesake
            self._open(name)
            return self._collections[name]

    def drop(self, name: str) -> None:
        with self._lock:
            self.store.drop_collection(name)
            self._collections.pop(name, None)
            self._failed.pop(name, None)
            self._aliases = self.store.aliases()
            shutil.rmtree(self._index_root(name), ignore_errors=True)

    def list(self) -> list[str]:
        return sorted([*self._collections, *self._failed])

    def resolve(self, name: str) -> str:
        """The collection a name or alias refers to."""
        return self._aliases.get(name, name)

    def get(self, name: str) -> Collection:
        target = self.resolve(name)
        collection = self._collections.get(target)
        if collection is not None:
            return collection
        if target in self._failed:
            raise self._failed[target]
        raise NotFound(f"collection {name!r} does not exist; collections: {', '.join(self.list()) or 'none'}")

    def update_aliases(
        self, set_aliases: Mapping[str, str] | None = None, delete_aliases: Sequence[str] = ()
    ) -> None:
        """Apply alias changes atomically: a request resolves either all old or all new targets."""
        with self._lock:
            self.store.update_aliases(set_aliases, delete_aliases)
            self._aliases = self.store.aliases()  # one reference swap: readers see old or new, never a mix

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def rebuild(self, name: str) -> Collection:
        """Rebuild a collection's indexes from the store (e.g. after DataLoss on its snapshot)."""
        target = self.resolve(name)
        with self._lock:
            if target in self._failed:
                remove_snapshots(self._index_root(target))
                self._open(target)
            else:
                self.get(target).rebuild()
        return self.get(target)

    def snapshot_all(self) -> None:
        for collection in list(self._collections.values()):
            collection.snapshot()

    def close(self, snapshot: bool = True) -> None:
        """Publish snapshots (fast restarts) and close the store."""
        if snapshot:
            self.snapshot_all()
        self._executor.shutdown(wait=True)
        self.store.close()
        self._process_lock.release()


# SubSearch lives with the field indexes; it is part of this module's query API too.
__all__ = ["Collection", "CollectionManager", "Hit", "Query", "QueryResult", "SubSearch"]
