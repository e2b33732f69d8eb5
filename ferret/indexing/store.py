"""The durable document store: one SQLite database (WAL, synchronous=FULL) per data directory.

It is the source of truth for collections, aliases, documents, metadata and vectors; every index is
derived from it. Each write is one transaction that bumps the collection's version (its operation
sequence), so an upsert is acknowledged only after it is committed and fsynced, and nothing is
half-written when a batch is rejected.

Every upsert of a document gets a new row id (SQLite AUTOINCREMENT, never reused) and tombstones the
previous row by setting its `deleted_version`; indexes see only row ids. `changes_since(v)` lists what
an index snapshot taken at version v has to replay.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferret import durable_sqlite
from ferret.encoders.base import CompressedText, SparseVector
from ferret.errors import AlreadyExists, DataLoss, InvalidArgument, NotFound
from ferret.indexing.schema import COMPRESSED_FIELD, CollectionSchema, check_name

MAX_BATCH = 10_000
MAX_ID_LENGTH = 512

_DDL = """
CREATE TABLE IF NOT EXISTS collections (
    name TEXT PRIMARY KEY, schema TEXT NOT NULL, created REAL NOT NULL, version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS aliases (
    alias TEXT PRIMARY KEY, collection TEXT NOT NULL REFERENCES collections(name)
);
CREATE TABLE IF NOT EXISTS documents (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL, doc_id TEXT NOT NULL, text TEXT NOT NULL, metadata TEXT NOT NULL,
    version INTEGER NOT NULL, deleted_version INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS documents_live ON documents(collection, doc_id)
    WHERE deleted_version IS NULL;
CREATE INDEX IF NOT EXISTS documents_version ON documents(collection, version);
CREATE INDEX IF NOT EXISTS documents_deleted ON documents(collection, deleted_version);
CREATE TABLE IF NOT EXISTS vectors (
    row_id INTEGER NOT NULL REFERENCES documents(row_id), field TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (row_id, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class Document:
    """A document as the caller gives it. `vectors` holds precomputed fields: dense as a float array,
    sparse as a SparseVector or an (indices, values) pair; encoder fields are filled by the collection."""

    id: str
    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    vectors: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoredDocument:
    row_id: int
    id: str
    text: str
    metadata: dict[str, Any]
    version: int
    vectors: dict[str, np.ndarray | SparseVector] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectionRecord:
    name: str
    schema: CollectionSchema
    created: float
    version: int


@dataclass(frozen=True)
class WriteResult:
    version: int
    row_ids: np.ndarray  # new rows, in the order of the documents
    replaced_row_ids: np.ndarray  # rows tombstoned by this write


@dataclass(frozen=True)
class Changes:
    """What an index at watermark `since` needs to reach `version`: rows to add, rows to remove."""

    version: int
    added: list[StoredDocument]
    removed: np.ndarray


def pack_sparse(vector: SparseVector) -> bytes:
    return vector.indices.astype("<u4").tobytes() + vector.values.astype("<f4").tobytes()


def unpack_sparse(blob: bytes) -> SparseVector:
    n = len(blob) // 8
    return SparseVector(np.frombuffer(blob, "<u4", n), np.frombuffer(blob, "<f4", n, offset=4 * n))


# num_tokens, pooling_factor, m, dim as little-endian uint32, then the m x dim float32 matrix.
_COMPRESSED_HEADER = np.dtype("<u4")


def pack_compressed(compressed: CompressedText) -> bytes:
    """Encoder-space compressed vectors (before any projector) with what they replace."""
    if compressed.decoder is not None:
        raise InvalidArgument(
            f"a collection keeps compressed vectors before the projector, not ones projected for decoder "
            f"{compressed.decoder!r}"
        )
    vectors = np.ascontiguousarray(compressed.vectors, dtype="<f4")
    header = np.array([compressed.num_tokens, compressed.pooling_factor, *vectors.shape], _COMPRESSED_HEADER)
    return header.tobytes() + vectors.tobytes()


def unpack_compressed(blob: bytes) -> CompressedText:
    num_tokens, factor, m, dim = (int(x) for x in np.frombuffer(blob, _COMPRESSED_HEADER, 4))
    if len(blob) != 16 + 4 * m * dim:
        raise DataLoss(f"a stored compressed representation of {m}x{dim} floats has {len(blob)} bytes")
    vectors = np.frombuffer(blob, "<f4", m * dim, offset=16).reshape(m, dim)
    return CompressedText(vectors=vectors, num_tokens=num_tokens, pooling_factor=factor, decoder=None,
                          continuation=None)


def check_dense(field_name: str, vector: Any, dim: int) -> np.ndarray:
    """A float32 vector of `dim` finite values, or InvalidArgument saying what is wrong."""
    try:
        arr = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidArgument(f"field {field_name!r}: the vector is not a list of numbers") from None
    if arr.ndim != 1 or arr.shape[0] != dim:
        raise InvalidArgument(
            f"field {field_name!r}: expected a vector of dimension {dim}, got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise InvalidArgument(f"field {field_name!r}: the vector contains NaN or infinity")
    return arr


def check_sparse(field_name: str, vector: Any) -> SparseVector:
    """A SparseVector with strictly increasing uint32 indices and finite values, else InvalidArgument."""
    if isinstance(vector, SparseVector):
        indices, values = vector.indices, vector.values
    elif isinstance(vector, tuple | list) and len(vector) == 2:
        indices, values = vector
    elif isinstance(vector, Mapping) and {"indices", "values"} <= set(vector):
        indices, values = vector["indices"], vector["values"]
    else:
        raise InvalidArgument(f"field {field_name!r}: a sparse vector is (indices, values)")
    try:
        idx = np.asarray(indices, dtype=np.int64)
        val = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgument(
            f"field {field_name!r}: sparse indices must be integers and values numbers"
        ) from None
    if idx.ndim != 1 or val.ndim != 1 or idx.shape != val.shape:
        raise InvalidArgument(
            f"field {field_name!r}: sparse indices and values must be 1-D of equal length, "
            f"got {idx.shape} and {val.shape}"
        )
    if idx.size and (idx.min() < 0 or idx.max() >= 2**32):
        raise InvalidArgument(
            f"field {field_name!r}: sparse indices must be in [0, 2^32), got "
            f"{int(idx.min())}..{int(idx.max())}"
        )
    if idx.size > 1 and not (np.diff(idx) > 0).all():
        raise InvalidArgument(
            f"field {field_name!r}: sparse indices must be strictly increasing (sorted, no repeats)"
        )
    if not np.isfinite(val).all():
        raise InvalidArgument(f"field {field_name!r}: sparse values contain NaN or infinity")
    return SparseVector(idx.astype(np.uint32), val)


def _check_metadata(doc_id: str, metadata: Any) -> str:
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        raise InvalidArgument(f"document {doc_id!r}: metadata must be a map with string keys")
    try:
        return json.dumps(dict(metadata), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(
            f"document {doc_id!r}: metadata must hold JSON values without NaN/infinity ({exc})"
        ) from None


class DocumentStore:
    """All collections of one data directory. Thread-safe (one connection, one lock)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = durable_sqlite.connect(self.path)
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_DDL)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self):
        return durable_sqlite.Transaction(self._db, self._lock)

    # -- collections and aliases --------------------------------------------------------------------

    def create_collection(self, name: str, schema: CollectionSchema) -> CollectionRecord:
        check_name("collection", name)
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM collections WHERE name=?", (name,)).fetchone():
                raise AlreadyExists(f"collection {name!r} already exists; drop it first or pick another name")
            if db.execute("SELECT 1 FROM aliases WHERE alias=?", (name,)).fetchone():
                raise AlreadyExists(f"{name!r} is already an alias; pick another collection name")
            created = time.time()
            db.execute("INSERT INTO collections VALUES (?, ?, ?, 0)", (name, schema.to_json(), created))
        return CollectionRecord(name, schema, created, 0)

    def drop_collection(self, name: str) -> None:
        with self._transaction() as db:
            self._record(db, name)
            db.execute("DELETE FROM aliases WHERE collection=?", (name,))
            db.execute(
                "DELETE FROM vectors WHERE row_id IN (SELECT row_id FROM documents WHERE collection=?)",
                (name,),
            )
            db.execute("DELETE FROM documents WHERE collection=?", (name,))
            db.execute("DELETE FROM collections WHERE name=?", (name,))
            db.execute("DELETE FROM meta WHERE key LIKE ?", (f"{name}:%",))

    def collection(self, name: str) -> CollectionRecord:
        with self._lock:
            return self._record(self._db, name)

    def list_collections(self) -> list[CollectionRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, schema, created, version FROM collections ORDER BY name"
            ).fetchall()
        return [CollectionRecord(n, CollectionSchema.from_json(s), c, v) for n, s, c, v in rows]

    @staticmethod
    def _record(db: sqlite3.Connection, name: str) -> CollectionRecord:
        row = db.execute(
            "SELECT name, schema, created, version FROM collections WHERE name=?", (name,)
        ).fetchone()
        if row is None:
            raise NotFound(f"collection {name!r} does not exist")
        return CollectionRecord(row[0], CollectionSchema.from_json(row[1]), row[2], row[3])

    def update_aliases(
        self, set_aliases: Mapping[str, str] | None = None, delete_aliases: Sequence[str] = ()
    ) -> None:
        """Apply alias changes in one transaction: readers see all of them or none."""
        with self._transaction() as db:
            for alias in delete_aliases:
                if db.execute("DELETE FROM aliases WHERE alias=?", (alias,)).rowcount == 0:
                    raise NotFound(f"alias {alias!r} does not exist")
            for alias, target in (set_aliases or {}).items():
                check_name("alias", alias)
                self._record(db, target)
                if db.execute("SELECT 1 FROM collections WHERE name=?", (alias,)).fetchone():
                    raise AlreadyExists(f"{alias!r} is a collection name; an alias needs a name of its own")
                db.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?)", (alias, target))

    def aliases(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT alias, collection FROM aliases ORDER BY alias").fetchall())

    # -- documents -----------------------------------------------------------------------------------

    def upsert(
        self, collection: str, documents: Sequence[Document], meta: Mapping[str, str] | None = None
    ) -> WriteResult:
        """Insert or replace documents in one durable transaction; `meta` (e.g. a build checkpoint) is
        written in the same transaction. Returns the new version and row ids."""
        if not documents:
            raise InvalidArgument("an upsert needs at least one document")
        if len(documents) > MAX_BATCH:
            raise InvalidArgument(
                f"an upsert takes at most {MAX_BATCH} documents, got {len(documents)}; split it"
            )
        with self._lock:
            schema = self._record(self._db, collection).schema
        rows = [self._validated(schema, doc) for doc in documents]
        ids = [r[0] for r in rows]
        if len(set(ids)) != len(ids):
            repeated = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise InvalidArgument(f"document ids must be unique within a batch; repeated: {repeated}")
        with self._transaction() as db:
            version = self._bump(db, collection)
            replaced = []
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                replaced += [
                    r[0]
                    for r in db.execute(
                        f"SELECT row_id FROM documents WHERE collection=? AND deleted_version IS NULL "
                        f"AND doc_id IN ({marks})",
                        (collection, *chunk),
                    )
                ]
                db.execute(
                    f"UPDATE documents SET deleted_version=? WHERE collection=? AND deleted_version IS NULL "
                    f"AND doc_id IN ({marks})",
                    (version, collection, *chunk),
                )
            row_ids = []
            for doc_id, text, metadata, blobs in rows:
                cur = db.execute(
                    "INSERT INTO documents (collection, doc_id, text, metadata, version) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (collection, doc_id, text, metadata, version),
                )
                row_ids.append(cur.lastrowid)
                db.executemany(
                    "INSERT INTO vectors VALUES (?, ?, ?)",
                    [(cur.lastrowid, name, blob) for name, blob in blobs.items()],
                )
            self._write_meta(db, collection, meta or {})
        return WriteResult(
            version, np.array(row_ids, dtype=np.int64), np.array(sorted(replaced), dtype=np.int64)
        )

    def delete(self, collection: str, ids: Sequence[str]) -> WriteResult:
        """Tombstone the live rows of `ids` (absent ids are ignored)."""
        if isinstance(ids, str) or not all(isinstance(i, str) for i in ids):
            raise InvalidArgument("delete takes a list of string document ids")
        with self._transaction() as db:
            self._record(db, collection)
            version = self._bump(db, collection)
            removed = []
            for chunk in _chunks(list(dict.fromkeys(ids)), 500):
                marks = ",".join("?" * len(chunk))
                removed += [
                    r[0]
                    for r in db.execute(
                        f"UPDATE documents SET deleted_version=? WHERE collection=? "
                        f"AND deleted_version IS NULL AND doc_id IN ({marks}) RETURNING row_id",
                        (version, collection, *chunk),
                    )
                ]
        return WriteResult(version, np.zeros(0, np.int64), np.array(sorted(removed), dtype=np.int64))

    def purge_tombstones(self, collection: str, up_to_version: int) -> int:
        """Delete rows tombstoned at or before `up_to_version`: once an index snapshot of that version is
        published, no catch-up needs them. Returns how many rows went."""
        with self._transaction() as db:
            db.execute(
                "DELETE FROM vectors WHERE row_id IN "
                "(SELECT row_id FROM documents WHERE collection=? AND deleted_version<=?)",
                (collection, up_to_version),
            )
            return db.execute(
                "DELETE FROM documents WHERE collection=? AND deleted_version<=?", (collection, up_to_version)
            ).rowcount

    def get(self, collection: str, ids: Sequence[str], with_vectors: bool = False) -> list[StoredDocument]:
        """Live documents by external id, in the order asked; absent ids are left out."""
        with self._lock:
            self._record(self._db, collection)
            found: dict[str, StoredDocument] = {}
            for chunk in _chunks(list(ids), 500):
                marks = ",".join("?" * len(chunk))
                found.update(
                    (d.id, d)
                    for d in self._documents(
                        f"collection=? AND deleted_version IS NULL AND doc_id IN ({marks})",
                        (collection, *chunk),
                        with_vectors,
                    )
                )
        return [found[i] for i in ids if i in found]

    def rows(self, row_ids: Sequence[int], with_vectors: bool = False) -> dict[int, StoredDocument]:
        """Documents by row id (tombstoned rows included: a result may name a row replaced meanwhile)."""
        out: dict[int, StoredDocument] = {}
        with self._lock:
            for chunk in _chunks([int(r) for r in row_ids], 500):
                marks = ",".join("?" * len(chunk))
                out.update(
                    (d.row_id, d) for d in self._documents(f"row_id IN ({marks})", chunk, with_vectors)
                )
        return out

    def compressed(self, row_ids: Sequence[int]) -> dict[int, CompressedText]:
        """The stored compressed representation of rows (rows without one are left out)."""
        out: dict[int, CompressedText] = {}
        with self._lock:
            for chunk in _chunks([int(r) for r in row_ids], 500):
                marks = ",".join("?" * len(chunk))
                for row_id, blob in self._db.execute(
                    f"SELECT row_id, data FROM vectors WHERE field=? AND row_id IN ({marks})",
                    (COMPRESSED_FIELD, *chunk),
                ):
                    out[row_id] = unpack_compressed(blob)
        return out

    def count(self, collection: str, where: str = "1", params: Sequence[Any] = ()) -> int:
        """Live documents of a collection, optionally those satisfying an SQL condition (see filters)."""
        with self._lock:
            self._record(self._db, collection)
            return self._db.execute(
                f"SELECT COUNT(*) FROM documents WHERE collection=? AND deleted_version IS NULL AND ({where})",
                (collection, *params),
            ).fetchone()[0]

    def version(self, collection: str) -> int:
        return self.collection(collection).version

    def live_documents(self, collection: str, batch_size: int = 1000) -> Iterator[list[StoredDocument]]:
        """All live documents with vectors, in row order, in batches (for index rebuilds)."""
        last = 0
        while True:
            with self._lock:
                batch = self._documents(
                    "collection=? AND deleted_version IS NULL AND row_id>? ORDER BY row_id LIMIT ?",
                    (collection, last, batch_size),
                    True,
                )
            if not batch:
                return
            yield batch
            last = batch[-1].row_id

    def changes_since(self, collection: str, since: int) -> Changes:
        """Rows an index at version `since` must add (still live) and remove (tombstoned after `since`)."""
        with self._lock:
            version = self._record(self._db, collection).version
            added = self._documents(
                "collection=? AND version>? AND deleted_version IS NULL ORDER BY row_id",
                (collection, since),
                True,
            )
            removed = [
                r[0]
                for r in self._db.execute(
                    "SELECT row_id FROM documents WHERE collection=? AND deleted_version>? AND version<=? "
                    "ORDER BY row_id",
                    (collection, since, since),
                )
            ]
        return Changes(version, added, np.array(removed, dtype=np.int64))

    def select_rows(self, collection: str, where: str, params: Sequence[Any]) -> np.ndarray:
        """Sorted live row ids of a collection that satisfy an SQL condition over `metadata` (see filters)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT row_id FROM documents WHERE collection=? AND deleted_version IS NULL "
                f"AND ({where}) ORDER BY row_id",
                (collection, *params),
            ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def update_meta(self, collection: str, meta: Mapping[str, str]) -> None:
        """Durably record bookkeeping values of a collection (e.g. build progress); not a data version."""
        with self._transaction() as db:
            self._record(db, collection)
            self._write_meta(db, collection, meta)

    @staticmethod
    def _write_meta(db: sqlite3.Connection, collection: str, meta: Mapping[str, str]) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [(f"{collection}:{key}", str(value)) for key, value in meta.items()],
        )

    def get_meta(self, collection: str, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (f"{collection}:{key}",)).fetchone()
        return row[0] if row else None

    # -- internals -----------------------------------------------------------------------------------

    @staticmethod
    def _bump(db: sqlite3.Connection, collection: str) -> int:
        row = db.execute(
            "UPDATE collections SET version=version+1 WHERE name=? RETURNING version", (collection,)
        ).fetchone()
        if row is None:
            raise NotFound(f"collection {collection!r} does not exist")
        return row[0]

    def _validated(self, schema: CollectionSchema, doc: Document) -> tuple[str, str, str, dict[str, bytes]]:
        if not isinstance(doc.id, str) or not doc.id or len(doc.id) > MAX_ID_LENGTH:
            raise InvalidArgument(
                f"document id {doc.id!r} is invalid: use a non-empty string of at most "
                f"{MAX_ID_LENGTH} characters"
            )
        if not isinstance(doc.text, str):
            raise InvalidArgument(f"document {doc.id!r}: text must be a string")
        metadata = _check_metadata(doc.id, doc.metadata)
        unknown = set(doc.vectors) - {
            f.name for f in (*schema.dense, *schema.sparse) if not getattr(f, "is_bm25", False)
        } - ({COMPRESSED_FIELD} if schema.compression else set())
        if unknown:
            raise InvalidArgument(f"document {doc.id!r}: unknown vector fields {sorted(unknown)}")
        blobs = {}
        for dense in schema.dense:
            if dense.name not in doc.vectors:
                raise InvalidArgument(f"document {doc.id!r}: missing a vector for dense field {dense.name!r}")
            blobs[dense.name] = (
                check_dense(dense.name, doc.vectors[dense.name], dense.dim).astype("<f4").tobytes()
            )
        for sparse in schema.sparse:
            if sparse.is_bm25:
                continue
            if sparse.name not in doc.vectors:
                raise InvalidArgument(
                    f"document {doc.id!r}: missing a vector for sparse field {sparse.name!r}"
                )
            blobs[sparse.name] = pack_sparse(check_sparse(sparse.name, doc.vectors[sparse.name]))
        if schema.compression:
            compressed = doc.vectors.get(COMPRESSED_FIELD)
            if not isinstance(compressed, CompressedText):
                raise InvalidArgument(f"document {doc.id!r}: missing its compressed representation")
            blobs[COMPRESSED_FIELD] = pack_compressed(compressed)
        return doc.id, doc.text, metadata, blobs

    def _documents(self, where: str, params: Sequence[Any], with_vectors: bool) -> list[StoredDocument]:
        rows = self._db.execute(
            f"SELECT row_id, doc_id, text, metadata, version, collection FROM documents WHERE {where}",
            tuple(params),
        ).fetchall()
        docs = [StoredDocument(r, i, t, json.loads(m), v) for r, i, t, m, v, _ in rows]
        if with_vectors and docs:
            schemas: dict[str, CollectionSchema] = {}
            dense_dims: dict[tuple[str, str], bool] = {}
            by_row = {d.row_id: d for d in docs}
            collection_of = {r[0]: r[5] for r in rows}
            for chunk in _chunks(list(by_row), 500):
                marks = ",".join("?" * len(chunk))
                for row_id, name, blob in self._db.execute(
                    f"SELECT row_id, field, data FROM vectors WHERE row_id IN ({marks})", chunk
                ):
                    coll = collection_of[row_id]
                    if coll not in schemas:
                        schemas[coll] = self._record(self._db, coll).schema
                    key = (coll, name)
                    if key not in dense_dims:
                        dense_dims[key] = any(f.name == name for f in schemas[coll].dense)
                    if name == COMPRESSED_FIELD:
                        by_row[row_id].vectors[name] = unpack_compressed(blob)
                    else:
                        by_row[row_id].vectors[name] = (
                            np.frombuffer(blob, "<f4") if dense_dims[key] else unpack_sparse(blob)
                        )
        return docs


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
