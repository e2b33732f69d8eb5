"""The tool catalogue: tools, usage records and per-tool vector state, durable in one SQLite file.

One SQLite database (`tools.sqlite` in the data dir) in WAL mode with synchronous=FULL, so a call that
returned has reached the disk. Every mutation is one transaction: an upsert, a delete or a usage record
either happens whole or not at all.

Besides the tools themselves the file keeps what would be expensive to rebuild at start-up:
- description vectors, keyed by (tool, model) and the hash of the text they were computed from;
- Tool2Vec state: per (tool, model) the running sum and count of usage-query embeddings, updated in the
  same transaction as the usage record that changes it (O(1) per usage).

`fingerprint` identifies the tool set (ids and versions); trained second stages store the fingerprint
they were trained on and are stale once it changes. `version` counts committed changes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ferret import durable_sqlite
from ferret.errors import DataLoss, InvalidArgument, NotFound

DB_NAME = "tools.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tools (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    parameters TEXT NOT NULL,
    namespace TEXT NOT NULL,
    tags TEXT NOT NULL,
    examples TEXT NOT NULL,
    version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    query TEXT NOT NULL,
    tool_ids TEXT NOT NULL,
    model TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS description_vectors (
    tool_id TEXT NOT NULL,
    model TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (tool_id, model)
);
CREATE TABLE IF NOT EXISTS usage_sums (
    tool_id TEXT NOT NULL,
    model TEXT NOT NULL,
    vector_sum BLOB NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (tool_id, model)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Tool:
    """One tool as callers describe it. `parameters` is a JSON-schema object (already parsed)."""

    id: str
    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    namespace: str = ""
    tags: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    version: str = ""

    def parameter_names(self) -> list[str]:
        props = self.parameters.get("properties", {})
        return list(props) if isinstance(props, dict) else []


@dataclass(frozen=True)
class UsageRecord:
    seq: int
    query: str
    tool_ids: tuple[str, ...]
    vector: np.ndarray  # the query's embedding by the model it was recorded with


def parse_parameters(parameters: str | dict[str, Any] | None, tool_id: str) -> dict[str, Any]:
    """A JSON-schema given as text or as a dict, checked to be a JSON object."""
    if parameters is None or parameters == "":
        return {}
    if isinstance(parameters, str):
        try:
            parameters = json.loads(parameters)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(
                f"tool {tool_id!r}: parameters is not valid JSON ({exc.msg} at char {exc.pos}); "
                'send a JSON-schema object such as {"type": "object", "properties": {}}'
            ) from None
    if not isinstance(parameters, dict):
        raise InvalidArgument(
            f"tool {tool_id!r}: parameters must be a JSON object (a JSON schema), "
            f"got {type(parameters).__name__}"
        )
    try:
        json.dumps(parameters)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"tool {tool_id!r}: parameters cannot be written as JSON: {exc}") from exc
    return parameters


def _checked(tool: Tool) -> Tool:
    """`tool` with its parameters parsed, or InvalidArgument saying what is wrong."""
    if not tool.id or not tool.id.strip():
        raise InvalidArgument("a tool needs a non-empty id")
    if not tool.name.strip():
        raise InvalidArgument(f"tool {tool.id!r} needs a non-empty name")
    if not tool.description.strip():
        raise InvalidArgument(f"tool {tool.id!r} needs a non-empty description")
    if any(not isinstance(t, str) or not t for t in tool.tags):
        raise InvalidArgument(f"tool {tool.id!r}: tags must be non-empty strings")
    return replace(
        tool,
        parameters=parse_parameters(tool.parameters, tool.id),
        tags=tuple(tool.tags),
        examples=tuple(tool.examples),
    )


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ToolCatalogue:
    """Durable tool catalogue in `data_dir`. Thread-safe: one lock guards the connection."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = durable_sqlite.connect(self.data_dir / DB_NAME)
        self._db.executescript(_SCHEMA)
        self._check_integrity()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _check_integrity(self) -> None:
        result = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise DataLoss(
                f"tool catalogue {self.data_dir / DB_NAME} failed its integrity check: {result}; "
                "restore it from a backup"
            )

    def _transaction(self):
        return durable_sqlite.Transaction(self._db, self._lock)

    # ---- tools -------------------------------------------------------------------------------------
    def upsert(self, tools: Sequence[Tool]) -> int:
        """Insert or replace tools by id; returns the new catalogue version. All or nothing."""
        if not tools:
            raise InvalidArgument("upsert needs at least one tool")
        seen: set[str] = set()
        tools = [_checked(t) for t in tools]
        for tool in tools:
            if tool.id in seen:
                raise InvalidArgument(f"tool id {tool.id!r} appears twice in one upsert; send each id once")
            seen.add(tool.id)
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO tools VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        t.id,
                        t.name,
                        t.description,
                        json.dumps(t.parameters, sort_keys=True),
                        t.namespace,
                        json.dumps(list(t.tags)),
                        json.dumps(list(t.examples)),
                        t.version,
                    )
                    for t in tools
                ],
            )
            return self._bump_version(db)

    def delete(self, tool_ids: Sequence[str]) -> int:
        """Delete tools by id (NotFound, nothing deleted, if any is unknown); returns the new version."""
        ids = list(dict.fromkeys(tool_ids))
        if not ids:
            raise InvalidArgument("delete needs at least one tool id")
        with self._transaction() as db:
            self._require_known(db, ids)
            db.executemany("DELETE FROM tools WHERE id = ?", [(i,) for i in ids])
            db.executemany("DELETE FROM description_vectors WHERE tool_id = ?", [(i,) for i in ids])
            db.executemany("DELETE FROM usage_sums WHERE tool_id = ?", [(i,) for i in ids])
            return self._bump_version(db)

    def list(self, namespace: str | None = None, tags: Iterable[str] = ()) -> list[Tool]:
        """Tools sorted by id, optionally only one namespace and only tools carrying all `tags`."""
        wanted = set(tags)
        with self._lock:
            if namespace is None:
                rows = self._db.execute("SELECT * FROM tools ORDER BY id").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM tools WHERE namespace = ? ORDER BY id", (namespace,)
                ).fetchall()
        tools = [_row_to_tool(r) for r in rows]
        return [t for t in tools if wanted.issubset(t.tags)] if wanted else tools

    def get(self, tool_ids: Sequence[str]) -> list[Tool]:
        with self._lock:
            self._require_known(self._db, tool_ids)
            by_id = {
                r[0]: _row_to_tool(r)
                for r in self._db.execute(
                    f"SELECT * FROM tools WHERE id IN ({','.join('?' * len(tool_ids))})", list(tool_ids)
                )
            }
        return [by_id[i] for i in tool_ids]

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM tools").fetchone()[0]

    def version(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        return int(row[0]) if row else 0

    def fingerprint(self) -> str:
        """Hash of the sorted (id, version) pairs: what a trained label space depends on."""
        with self._lock:
            rows = self._db.execute("SELECT id, version FROM tools ORDER BY id").fetchall()
        return text_hash(json.dumps(rows))[:16]

    # ---- usage -------------------------------------------------------------------------------------
    def record_usage(
        self, usages: Sequence[tuple[str, Sequence[str]]], model: str, query_vectors: np.ndarray
    ) -> int:
        """Store usage records (query, tool ids) and add each query's vector to its tools' Tool2Vec sums.

        One transaction for the whole batch; returns the seq of the last record.
        """
        if not usages:
            raise InvalidArgument("record usage needs at least one (query, tool ids) record")
        vectors = np.asarray(query_vectors, dtype=np.float32)
        rows, added = [], {}
        for (query, tool_ids), vector in zip(usages, vectors, strict=True):
            if not query.strip():
                raise InvalidArgument("a usage record needs a non-empty query")
            ids = list(dict.fromkeys(tool_ids))
            if not ids:
                raise InvalidArgument(
                    f"usage record for query {query[:60]!r} names no tool; give at least one id"
                )
            rows.append((query, json.dumps(ids), model, vector.tobytes()))
            for tool_id in ids:
                total, count = added.get(tool_id, (0.0, 0))
                added[tool_id] = (total + vector, count + 1)
        with self._transaction() as db:
            self._require_known(db, list(added))
            db.executemany("INSERT INTO usage (query, tool_ids, model, vector) VALUES (?, ?, ?, ?)", rows)
            for tool_id, (total, count) in added.items():
                row = db.execute(
                    "SELECT vector_sum, count FROM usage_sums WHERE tool_id = ? AND model = ?",
                    (tool_id, model),
                ).fetchone()
                if row is not None:
                    total, count = total + _blob(row[0]), count + row[1]
                db.execute(
                    "INSERT OR REPLACE INTO usage_sums VALUES (?, ?, ?, ?)",
                    (tool_id, model, np.asarray(total, np.float32).tobytes(), count),
                )
            return int(db.execute("SELECT MAX(seq) FROM usage").fetchone()[0])

    def usage(self, model: str) -> Iterator[UsageRecord]:
        """Usage records embedded by `model`, in order, each restricted to tools that still exist."""
        with self._lock:
            known = {r[0] for r in self._db.execute("SELECT id FROM tools")}
            rows = self._db.execute(
                "SELECT seq, query, tool_ids, vector FROM usage WHERE model = ? ORDER BY seq", (model,)
            ).fetchall()
        for seq, query, ids_json, vector in rows:
            ids = tuple(i for i in json.loads(ids_json) if i in known)
            if ids:
                yield UsageRecord(seq, query, ids, _blob(vector))

    def usage_sums(self, model: str) -> dict[str, tuple[np.ndarray, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT tool_id, vector_sum, count FROM usage_sums WHERE model = ?", (model,)
            ).fetchall()
        return {tool_id: (_blob(vec), count) for tool_id, vec, count in rows}

    # ---- description vectors cache -------------------------------------------------------------------
    def description_vectors(self, model: str) -> dict[str, tuple[str, np.ndarray]]:
        """tool id -> (hash of the text embedded, vector) for `model`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT tool_id, text_hash, vector FROM description_vectors WHERE model = ?", (model,)
            ).fetchall()
        return {tool_id: (h, _blob(vec)) for tool_id, h, vec in rows}

    def store_description_vectors(self, model: str, entries: dict[str, tuple[str, np.ndarray]]) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO description_vectors VALUES (?, ?, ?, ?)",
                [
                    (tool_id, model, h, np.asarray(v, dtype=np.float32).tobytes())
                    for tool_id, (h, v) in entries.items()
                ],
            )

    # ---- helpers -----------------------------------------------------------------------------------
    @staticmethod
    def _require_known(db: sqlite3.Connection, tool_ids: Sequence[str]) -> None:
        known = {
            r[0]
            for r in db.execute(
                f"SELECT id FROM tools WHERE id IN ({','.join('?' * len(tool_ids))})", list(tool_ids)
            )
        }
        unknown = [i for i in tool_ids if i not in known]
        if unknown:
            raise NotFound(
                f"unknown tool ids {unknown[:10]}{' ...' if len(unknown) > 10 else ''}; "
                "upsert the tools first or check the ids (ListTools shows them)"
            )

    @staticmethod
    def _bump_version(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        version = (int(row[0]) if row else 0) + 1
        db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(version),))
        return version


def _blob(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32).copy()


def _row_to_tool(row: tuple) -> Tool:
    tool_id, name, description, parameters, namespace, tags, examples, version = row
    return Tool(
        id=tool_id,
        name=name,
        description=description,
        parameters=json.loads(parameters),
        namespace=namespace,
        tags=tuple(json.loads(tags)),
        examples=tuple(json.loads(examples)),
        version=version,
    )
