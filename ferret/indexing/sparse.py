"""Inverted index over sparse vectors (SPLADE-like or BM25 weights) with inner-product scoring.

Two segments:
- a static segment, the bulk of the documents: a scipy CSC matrix (documents x terms) for exact search
  and, once it holds `min_approximate_docs` documents, a Seismic index (pyseismic-lsr) for approximate
  search. Seismic indexes cannot change, so deletes are tombstones (a live mask) until the next merge;
- a mutable segment for fresh writes, always searched exactly.

`merge()` folds the mutable segment and the tombstones into a new static segment. The expensive build
runs without the lock, so searches and writes go on meanwhile; the new segment is swapped in under the
lock, with the deletes that arrived during the build applied to it. When the mutable segment passes
`max_fresh_docs`, `add` starts a merge in a background thread.

Term ids (uint32, any vocabulary) are renumbered into dense columns; Seismic sees the columns as its
component ids (u16 index when there are at most 65,535 columns, the LV variant otherwise) and the static
position of a document as its string doc id. Hits are documents with a positive score. Seismic builds run
in a child process (`seismic_build`): in-process they would hold the GIL and print to stdout.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import seismic

from ferret.encoders.base import SparseVector
from ferret.errors import FailedPrecondition, InvalidArgument
from ferret.indexing.rows import checked_row_ids
from ferret.indexing.seismic_build import build_in_child

_STATE_FILE = "sparse.json"
_ARRAYS_FILE = "sparse.npz"
_SEISMIC_STEM = "sparse"  # Seismic appends ".index.seismic"

# Seismic settings, measured on 100,000 generated SPLADE-like documents (bench/sparse_data.py: 30k-term
# Zipf vocabulary, 100-200 non-zeros per document; 200 queries of 20-40), recall@10 of the exact top-10:
# n_postings 100 keeps ~3M of the 15M postings (an average of 100 per term): build 57 s on 2 busy cores,
# recall 0.98 at query_cut 20 (0.95 at 10), 10-20x the exact path's queries/s; n_postings 250 reached
# recall 0.996 but built for 136 s at 5-8x. Build time grows with the postings kept (each one costs a
# pass over its document in clustering and summaries), so n_postings is the build-time knob. It is an
# average per term, not a fraction: a corpus with many more postings per term than 100k of these
# documents (~500) keeps a smaller share of them and should raise n_postings (bench/search.py).
SEISMIC_BUILD_DEFAULTS: dict[str, Any] = {
    "n_postings": 100,
    "centroid_fraction": 0.1,
    "min_cluster_size": 2,
    "summary_energy": 0.4,
    "max_fraction": 1.5,
    "doc_cut": 15,
}
SEISMIC_SEARCH_DEFAULTS: dict[str, Any] = {"query_cut": 20, "heap_factor": 0.9}


@dataclass
class _Rows:
    """Documents of one segment: row ids, a live mask, and their vectors as CSR pieces over columns."""

    ids: np.ndarray
    live: np.ndarray
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (indptr, columns, values)

    @classmethod
    def empty(cls) -> _Rows:
        return cls(np.zeros(0, np.int64), np.zeros(0, bool), [])

    def matrix(self, columns: int) -> sp.csr_matrix:
        blocks = [sp.csr_matrix((v, c, p), shape=(len(p) - 1, columns)) for p, c, v in self.pieces]
        return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, columns), dtype=np.float32)


def _top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((ids, -scores))[:k]
    return ids[order], scores[order].astype(np.float32)


class SparseIndex:
    """Inverted index over sparse vectors (SPLADE-like or BM25 weights), inner-product scoring.
    Exact path + approximate path (Seismic, pyseismic-lsr) for large static segments, small mutable
    segment for fresh writes, tombstones, merge."""

    def __init__(self, approximate: bool = True, **params: Any) -> None:
        known = {"min_approximate_docs", "max_fresh_docs", *SEISMIC_BUILD_DEFAULTS, *SEISMIC_SEARCH_DEFAULTS}
        unknown = set(params) - known
        if unknown:
            raise InvalidArgument(f"unknown sparse index parameters {sorted(unknown)}; use {sorted(known)}")
        self.approximate = approximate
        self.params = {
            "min_approximate_docs": 10_000,
            "max_fresh_docs": 20_000,
            **SEISMIC_BUILD_DEFAULTS,
            **SEISMIC_SEARCH_DEFAULTS,
            **params,
        }
        self._lock = threading.RLock()
        self._merge_lock = threading.Lock()
        self._vocabulary: dict[int, int] = {}  # term id -> column
        self._where: dict[int, tuple[bool, int]] = {}  # row id -> (in static segment, position)
        self._static = _Rows.empty()
        self._static_matrix = sp.csc_matrix((0, 0), dtype=np.float32)
        self._seismic: Any = None
        self._fresh = _Rows.empty()
        self._fresh_matrix: sp.csc_matrix | None = None
        self._background: threading.Thread | None = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._where)

    # -- writes -------------------------------------------------------------------------------------

    def _columns(self, indices: np.ndarray) -> np.ndarray:
        vocabulary = self._vocabulary
        return np.fromiter(
            (vocabulary.setdefault(t, len(vocabulary)) for t in indices.tolist()), np.int64, len(indices)
        )

    def add(self, ids: np.ndarray, vectors: Sequence[SparseVector]) -> None:
        ids = checked_row_ids(ids, len(vectors), "vectors")
        for row, vector in zip(ids.tolist(), vectors, strict=True):
            if len(vector.indices) != len(vector.values):
                raise InvalidArgument(f"row {row}: indices and values differ in length")
            if len(vector.indices) > 1 and not np.all(np.diff(vector.indices.astype(np.int64)) > 0):
                raise InvalidArgument(f"row {row}: sparse indices must be strictly increasing")
            if not np.all(np.isfinite(vector.values)):
                raise InvalidArgument(f"row {row}: sparse values must be finite (no NaN or infinity)")
        with self._lock:
            present = [i for i in ids.tolist() if i in self._where]
            if present:
                raise InvalidArgument(f"row ids already indexed: {present[:5]}; delete them first")
            indptr = np.zeros(len(ids) + 1, dtype=np.int64)
            indptr[1:] = np.cumsum([len(v.indices) for v in vectors])
            terms = np.concatenate([v.indices for v in vectors]) if vectors else np.zeros(0, np.uint32)
            values = np.concatenate([v.values for v in vectors]) if vectors else np.zeros(0, np.float32)
            start = len(self._fresh.ids)
            self._fresh.pieces.append((indptr, self._columns(terms), values.astype(np.float32)))
            self._fresh.ids = np.concatenate([self._fresh.ids, ids])
            self._fresh.live = np.concatenate([self._fresh.live, np.ones(len(ids), bool)])
            self._where.update((i, (False, start + n)) for n, i in enumerate(ids.tolist()))
            self._fresh_matrix = None
            if len(self._fresh.ids) > self.params["max_fresh_docs"] and not self._merge_lock.locked():
                self._background = threading.Thread(target=self.merge, name="sparse-merge", daemon=True)
                self._background.start()

    def delete(self, ids: np.ndarray) -> None:
        """Tombstone documents; ids that are not indexed are ignored (deletes are idempotent)."""
        with self._lock:
            for row_id in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
                place = self._where.pop(row_id, None)
                if place is not None:
                    (self._static if place[0] else self._fresh).live[place[1]] = False

    def merge(self) -> None:
        """Fold the mutable segment and the tombstones into a new static segment (blocks until done)."""
        with self._merge_lock:
            with self._lock:
                columns = len(self._vocabulary)
                snapshot_pieces = len(self._fresh.pieces)
                snapshot_rows = len(self._fresh.ids)
                parts = [
                    (self._static, self._static_matrix.tocsr()),
                    (self._fresh, self._fresh_csc().tocsr()),
                ]
                ids = np.concatenate([rows.ids[rows.live] for rows, _ in parts])
                blocks = [m[rows.live] for rows, m in parts]
            for block in blocks:
                block.resize((block.shape[0], columns))  # the static block predates newer terms
            merged = sp.vstack(blocks, format="csr")
            merged.sort_indices()
            index = self._build_seismic(merged) if self._wants_seismic(len(ids)) else None
            merged_csc = merged.tocsc()
            with self._lock:
                # Deletes that arrived during the build: ids no longer in `_where` stay dead.
                live = np.fromiter((i in self._where for i in ids.tolist()), bool, len(ids))
                fresh = _Rows(
                    self._fresh.ids[snapshot_rows:],
                    self._fresh.live[snapshot_rows:],
                    self._fresh.pieces[snapshot_pieces:],
                )
                self._static = _Rows(ids, live, [])  # its vectors live in `_static_matrix`
                self._static_matrix, self._seismic = merged_csc, index
                self._fresh, self._fresh_matrix = fresh, None
                for position, row_id in enumerate(ids.tolist()):
                    if live[position]:
                        self._where[row_id] = (True, position)
                for position, row_id in enumerate(fresh.ids.tolist()):
                    if fresh.live[position]:
                        self._where[row_id] = (False, position)

    def wait_for_merge(self) -> None:
        """Block until a background merge started by `add` has finished."""
        thread = self._background
        if thread is not None:
            thread.join()

    def _wants_seismic(self, documents: int) -> bool:
        return self.approximate and documents >= self.params["min_approximate_docs"]

    def _build_seismic(self, matrix: sp.csr_matrix) -> Any:
        build = {name: self.params[name] for name in SEISMIC_BUILD_DEFAULTS}
        return build_in_child(matrix.indptr, matrix.indices, matrix.data, matrix.shape[1], build)

    # -- reads --------------------------------------------------------------------------------------

    def _fresh_csc(self) -> sp.csc_matrix:
        if self._fresh_matrix is None:
            self._fresh_matrix = self._fresh.matrix(len(self._vocabulary)).tocsc()
        return self._fresh_matrix

    def _query_columns(self, query: SparseVector) -> tuple[np.ndarray, np.ndarray]:
        if len(query.indices) != len(query.values):
            raise InvalidArgument(f"query has {len(query.indices)} indices but {len(query.values)} values")
        if not np.all(np.isfinite(query.values)):
            raise InvalidArgument("query values must be finite (no NaN or infinity)")
        columns = np.array([self._vocabulary.get(t, -1) for t in query.indices.tolist()], dtype=np.int64)
        known = columns >= 0
        return columns[known], query.values[known].astype(np.float64)

    @staticmethod
    def _exact_scores(matrix: sp.csc_matrix, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
        inside = columns < matrix.shape[1]
        return np.asarray(matrix[:, columns[inside]] @ values[inside]).reshape(-1)

    @staticmethod
    def _admitted(rows: _Rows, allowed: np.ndarray | None) -> np.ndarray:
        return rows.live if allowed is None else rows.live & np.isin(rows.ids, allowed)

    def _approximate_static(
        self, columns: np.ndarray, values: np.ndarray, k: int, admitted: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Seismic's best admitted static hits, or None when too few survive the filters."""
        eligible = int(admitted.sum())
        if eligible == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        n = len(admitted)
        # Over-fetch by the share of documents the tombstones and the filter take out; with nothing taken
        # out fetch exactly k, as a larger heap weakens Seismic's block pruning (heap_factor).
        fetch = k if eligible == n else min(n, int(np.ceil(k * n / eligible)) + 2 * k)
        inside = columns < self._static_matrix.shape[1]
        components = columns[inside].astype(seismic.get_seismic_string())
        hits = self._seismic.search(
            "q",
            components,
            values[inside].astype(np.float32),
            fetch,
            self.params["query_cut"],
            self.params["heap_factor"],
        )
        positions = np.array([int(doc) for _, _, doc in hits], dtype=np.int64)
        scores = np.array([score for _, score, _ in hits], dtype=np.float64)
        keep = admitted[positions] & (scores > 0) if len(positions) else np.zeros(0, bool)
        if keep.sum() < min(k, eligible) and len(hits) == fetch:
            return None
        return self._static.ids[positions[keep]], scores[keep]

    def search(
        self, query: SparseVector, k: int, allowed: np.ndarray | None = None, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        if k <= 0:
            raise InvalidArgument(f"k must be positive, got {k}")
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
        with self._lock:
            columns, values = self._query_columns(query)
            found_ids, found_scores = [], []
            static_admitted = self._admitted(self._static, allowed)
            approximate = None
            if self._seismic is not None and not exact:
                approximate = self._approximate_static(columns, values, k, static_admitted)
            if approximate is None:
                scores = self._exact_scores(self._static_matrix, columns, values)
                keep = static_admitted & (scores > 0)
                approximate = (self._static.ids[keep], scores[keep])
            found_ids.append(approximate[0])
            found_scores.append(approximate[1])
            if len(self._fresh.ids):
                fresh_scores = self._exact_scores(self._fresh_csc(), columns, values)
                keep = self._admitted(self._fresh, allowed) & (fresh_scores > 0)
                found_ids.append(self._fresh.ids[keep])
                found_scores.append(fresh_scores[keep])
            return _top_k(np.concatenate(found_ids), np.concatenate(found_scores), k)

    # -- persistence --------------------------------------------------------------------------------

    def save(self, directory: Path) -> list[Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            vocabulary = np.zeros(len(self._vocabulary), dtype=np.uint32)
            vocabulary[list(self._vocabulary.values())] = list(self._vocabulary.keys())
            static = self._static_matrix.tocsr()
            fresh = self._fresh.matrix(len(self._vocabulary))
            arrays_path = directory / _ARRAYS_FILE
            with arrays_path.open("wb") as f:
                np.savez(
                    f,
                    vocabulary=vocabulary,
                    static_ids=self._static.ids,
                    static_live=self._static.live,
                    static_indptr=static.indptr.astype(np.int64),
                    static_columns=static.indices.astype(np.int64),
                    static_values=static.data.astype(np.float32),
                    static_columns_count=np.array(static.shape[1]),
                    fresh_ids=self._fresh.ids,
                    fresh_live=self._fresh.live,
                    fresh_indptr=fresh.indptr.astype(np.int64),
                    fresh_columns=fresh.indices.astype(np.int64),
                    fresh_values=fresh.data.astype(np.float32),
                )
            files = [arrays_path]
            seismic_kind = None
            if self._seismic is not None:
                seismic_kind = type(self._seismic).__name__
                self._seismic.save(str(directory / _SEISMIC_STEM))
                files.append(directory / f"{_SEISMIC_STEM}.index.seismic")
            state = {"format": 1, "approximate": self.approximate, "params": self.params}
            state["seismic"] = seismic_kind
            state_path = directory / _STATE_FILE
            state_path.write_text(json.dumps(state), encoding="utf-8")
        return [state_path, *files]

    @classmethod
    def load(cls, directory: Path) -> SparseIndex:
        directory = Path(directory)
        state = json.loads((directory / _STATE_FILE).read_text(encoding="utf-8"))
        if state.get("format") != 1:
            raise FailedPrecondition(f"{directory / _STATE_FILE}: unknown format {state.get('format')}")
        index = cls(state["approximate"], **state["params"])
        with np.load(directory / _ARRAYS_FILE) as saved:
            a = {name: saved[name] for name in saved.files}
        index._vocabulary = {int(t): c for c, t in enumerate(a["vocabulary"].tolist())}
        static_shape = (len(a["static_ids"]), int(a["static_columns_count"]))
        index._static_matrix = sp.csr_matrix(
            (a["static_values"], a["static_columns"], a["static_indptr"]), shape=static_shape
        ).tocsc()
        index._static = _Rows(a["static_ids"], a["static_live"], [])
        index._fresh = _Rows(
            a["fresh_ids"], a["fresh_live"], [(a["fresh_indptr"], a["fresh_columns"], a["fresh_values"])]
        )
        for in_static, rows in ((True, index._static), (False, index._fresh)):
            for position, row_id in enumerate(rows.ids.tolist()):
                if rows.live[position]:
                    index._where[row_id] = (in_static, position)
        if state["seismic"]:
            index_type = getattr(seismic, state["seismic"])
            index._seismic = index_type.load(str(directory / f"{_SEISMIC_STEM}.index.seismic"))
        return index
