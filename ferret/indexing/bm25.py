"""BM25 over a collection's texts, scored the way Lucene 9's BM25Similarity scores them.

Why every detail matches Lucene (so that rankings agree with Pyserini/Anserini on the same corpus):
- idf = ln(1 + (N - df + 0.5) / (df + 0.5)), N = live documents with at least one term;
- per term: w - w / (1 + tf * c[norm]), w = query-term count * idf, with no (k1 + 1) factor;
- the document length is stored lossily in one byte (Lucene's SmallFloat.intToByte4), and
  c[norm] = 1 / (k1 * (1 - b + b * decoded_length / avgdl)) is a 256-entry table, so a change of avgdl
  after adds or deletes only recomputes that table;
- the analysis chain is `ferret.encoders.bm25.Analyzer` (Lucene's English analyzer), and ties are broken
  by insertion order, as Lucene breaks them by its internal document number.

Layout: term frequencies in a scipy CSC matrix (documents x terms) for the bulk of the documents plus a
small one for recent adds, folded into the main one when it grows; deletes are tombstones until half the
rows are dead, then rows are compacted. Collection statistics always count live documents only.

Shards: a collection split over several indexes scores like the single index when every shard searches
with the collection's statistics instead of its own (Elasticsearch's dfs_query_then_fetch): gather
`term_statistics(texts)` from every shard, add them up (`TermStatistics.sum`), and pass the sum as
`search(..., statistics=)`. N, df and the token total are integers, so the sums are exact and the scores
equal the single index's to the last bit.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ferret.encoders.bm25 import Analyzer
from ferret.errors import FailedPrecondition, InvalidArgument
from ferret.indexing.rows import checked_row_ids

_STATE_FILE = "bm25.json"
_POSTINGS_FILE = "bm25.npz"
# Dense score blocks of at most this many floats in `search_batch` (64 MiB as float64).
_SCORE_BLOCK = 1 << 23


def _int_to_int4(value: int) -> int:
    """Lucene's SmallFloat.longToInt4: 4 significant bits (3 stored) and a 4-bit shift."""
    bits = value.bit_length()
    if bits < 4:
        return value
    shift = bits - 4
    return ((value >> shift) & 0x07) | ((shift + 1) << 3)


def _int4_to_int(encoded: int) -> int:
    bits = encoded & 0x07
    shift = (encoded >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


_MAX_INT4 = _int_to_int4(2**31 - 1)
_EXACT_LENGTHS = 255 - _MAX_INT4  # lengths below this are stored exactly (24)


def length_to_norm(length: int) -> int:
    """Document length -> Lucene's one-byte norm (SmallFloat.intToByte4)."""
    if length < _EXACT_LENGTHS:
        return length
    return _EXACT_LENGTHS + _int_to_int4(length - _EXACT_LENGTHS)


def norm_to_length(norm: int) -> int:
    """Lucene's SmallFloat.byte4ToInt: the length that BM25 sees for a stored norm."""
    if norm < _EXACT_LENGTHS:
        return norm
    return min(_EXACT_LENGTHS + _int4_to_int(norm - _EXACT_LENGTHS), 2**31 - 1)


_DECODED_LENGTH = np.array([norm_to_length(n) for n in range(256)], dtype=np.float32)
_NORM_OF_LENGTH_CACHE = np.array([length_to_norm(n) for n in range(4096)], dtype=np.uint8)


def _norms(lengths: np.ndarray) -> np.ndarray:
    small = lengths < len(_NORM_OF_LENGTH_CACHE)
    out = np.empty(len(lengths), dtype=np.uint8)
    out[small] = _NORM_OF_LENGTH_CACHE[lengths[small]]
    out[~small] = [length_to_norm(int(n)) for n in lengths[~small]]
    return out


def _top_k(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k best candidates, best first, ties by lower position (Lucene's doc order)."""
    if len(candidates) > k:
        cutoff = np.partition(scores[candidates], len(candidates) - k)[len(candidates) - k]
        candidates = candidates[scores[candidates] >= cutoff]
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order[:k]]


def _count(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise InvalidArgument(f"term statistics: {what} must be an integer >= 0, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class TermStatistics:
    """The collection statistics that BM25 scores of some query texts depend on. Validated on creation:
    statistics that no collection could have are refused (InvalidArgument)."""

    documents: int  # live documents with at least one term (N; Lucene's docCount)
    tokens: int  # their total length in analysed terms (avgdl = tokens / documents; Lucene's sumTotalTermFreq)
    df: Mapping[str, int] = field(default_factory=dict)  # analysed term -> live documents that contain it

    def __post_init__(self) -> None:
        documents, tokens = _count("documents", self.documents), _count("tokens", self.tokens)
        if tokens < documents or (documents == 0) != (tokens == 0):
            raise InvalidArgument(
                f"term statistics: {tokens} tokens in {documents} documents is impossible; every counted "
                "document has at least one term (tokens >= documents, both 0 or both > 0)"
            )
        df = {}
        for term, count in self.df.items():
            if not isinstance(term, str) or not term:
                raise InvalidArgument(f"term statistics: df keys must be non-empty analysed terms, got {term!r}")
            df[term] = _count(f"df of {term!r}", count)
            if df[term] > documents:
                raise InvalidArgument(
                    f"term statistics: df of {term!r} is {df[term]} but there are only {documents} documents; "
                    "df counts documents, so it cannot exceed them"
                )
        object.__setattr__(self, "documents", documents)
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "df", df)

    @classmethod
    def sum(cls, parts: Iterable[TermStatistics]) -> TermStatistics:
        """The statistics of the union of disjoint document sets (e.g. the shards of a collection)."""
        documents, tokens, df = 0, 0, Counter()
        for part in parts:
            documents += part.documents
            tokens += part.tokens
            df.update(part.df)
        return cls(documents, tokens, dict(df))


class BM25Index:
    """BM25 with per-collection statistics; ranking agrees with Lucene's BM25 (Pyserini)."""

    def __init__(self, k1: float = 0.9, b: float = 0.4, analyzer: Analyzer | None = None) -> None:
        if not (np.isfinite(k1) and k1 >= 0):
            raise InvalidArgument(f"BM25 k1 must be a finite number >= 0, got {k1}")
        if not (np.isfinite(b) and 0 <= b <= 1):
            raise InvalidArgument(f"BM25 b must be in [0, 1], got {b}")
        self.k1 = float(k1)
        self.b = float(b)
        self.analyzer = analyzer or Analyzer()
        self._lock = threading.RLock()
        self._terms: dict[str, int] = {}
        self._df = np.zeros(0, dtype=np.int64)
        self._ids = np.zeros(0, dtype=np.int64)  # position -> row id
        self._live = np.zeros(0, dtype=bool)
        self._lengths = np.zeros(0, dtype=np.int64)
        self._position: dict[int, int] = {}
        # Rows of term frequencies (CSR pieces: indptr, term columns, tf) in position order.
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._chunk_starts: list[int] = []
        self._main = sp.csc_matrix((0, 0), dtype=np.float32)
        self._main_rows = 0
        self._main_chunks = 0
        self._recent: sp.csc_matrix | None = None
        self._live_docs = 0  # live documents with at least one term (Lucene's docCount)
        self._live_tokens = 0  # sum of their lengths (Lucene's sumTotalTermFreq)

    def __len__(self) -> int:
        return int(self._live.sum())

    # -- writes -------------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, texts: Sequence[str]) -> None:
        ids = checked_row_ids(ids, len(texts), "texts")
        analyzed = [Counter(self.analyzer(text)) for text in texts]
        with self._lock:
            present = [int(i) for i in ids if int(i) in self._position]
            if present:
                raise InvalidArgument(f"row ids already indexed: {present[:5]}; delete them first")
            indptr = np.zeros(len(ids) + 1, dtype=np.int64)
            columns: list[int] = []
            freqs: list[int] = []
            for row, counts in enumerate(analyzed):
                for term, tf in counts.items():
                    column = self._terms.setdefault(term, len(self._terms))
                    columns.append(column)
                    freqs.append(tf)
                indptr[row + 1] = len(columns)
            columns_arr = np.array(columns, dtype=np.int64)
            freqs_arr = np.array(freqs, dtype=np.float32)
            lengths = np.array([sum(c.values()) for c in analyzed], dtype=np.int64)
            if len(self._df) < len(self._terms):
                self._df = np.concatenate([self._df, np.zeros(len(self._terms) - len(self._df), np.int64)])
            np.add.at(self._df, columns_arr, 1)
            start = len(self._ids)
            self._chunk_starts.append(start)
            self._chunks.append((indptr, columns_arr, freqs_arr))
            self._ids = np.concatenate([self._ids, ids])
            self._live = np.concatenate([self._live, np.ones(len(ids), dtype=bool)])
            self._lengths = np.concatenate([self._lengths, lengths])
            self._position.update(zip(ids.tolist(), range(start, start + len(ids)), strict=True))
            self._live_docs += int((lengths > 0).sum())
            self._live_tokens += int(lengths.sum())
            self._recent = None

    def delete(self, ids: np.ndarray) -> None:
        """Remove documents; ids that are not indexed are ignored (deletes are idempotent)."""
        with self._lock:
            for row_id in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
                position = self._position.pop(row_id, None)
                if position is None:
                    continue
                self._live[position] = False
                chunk = int(np.searchsorted(self._chunk_starts, position, side="right")) - 1
                indptr, columns, _ = self._chunks[chunk]
                row = position - self._chunk_starts[chunk]
                self._df[columns[indptr[row] : indptr[row + 1]]] -= 1
                if self._lengths[position] > 0:
                    self._live_docs -= 1
                    self._live_tokens -= int(self._lengths[position])
            if len(self._ids) > 1000 and self._live.sum() < len(self._ids) // 2:
                self._compact()

    def _compact(self) -> None:
        """Drop dead rows (positions are renumbered; relative order, hence tie-breaking, is kept)."""
        matrix = self._rows_matrix()[self._live]
        keep = self._live
        self._ids, self._lengths = self._ids[keep], self._lengths[keep]
        self._live = np.ones(len(self._ids), dtype=bool)
        self._position = dict(zip(self._ids.tolist(), range(len(self._ids)), strict=True))
        self._chunks = [(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64), matrix.data)]
        self._chunk_starts = [0]
        self._main = sp.csc_matrix((0, 0), dtype=np.float32)
        self._main_chunks = 0
        self._main_rows = 0
        self._recent = None

    def _rows_matrix(self, first_chunk: int = 0) -> sp.csr_matrix:
        vocabulary = len(self._terms)
        pieces = [
            sp.csr_matrix((data, columns, indptr), shape=(len(indptr) - 1, vocabulary))
            for indptr, columns, data in self._chunks[first_chunk:]
        ]
        if not pieces:
            return sp.csr_matrix((0, vocabulary), dtype=np.float32)
        return sp.vstack(pieces, format="csr")

    def _segments(self) -> list[tuple[int, sp.csc_matrix]]:
        """(first position, term-frequency CSC) of the main and the recent segment, refreshed if stale."""
        recent_rows = len(self._ids) - self._main_rows
        if recent_rows > max(10_000, self._main_rows // 10):
            self._main = self._rows_matrix().tocsc()
            self._main_rows, self._main_chunks = len(self._ids), len(self._chunks)
            self._recent, recent_rows = None, 0
        if recent_rows and self._recent is None:
            self._recent = self._rows_matrix(self._main_chunks).tocsc()
        segments = [(0, self._main)]
        if recent_rows:
            segments.append((self._main_rows, self._recent))
        return segments

    # -- reads --------------------------------------------------------------------------------------

    def term_statistics(self, texts: Sequence[str]) -> TermStatistics:
        """This index's statistics for the analysed terms of `texts` (terms in no live document left out)."""
        terms = {term for text in texts for term in self.analyzer(text)}
        with self._lock:
            columns = {term: self._terms[term] for term in terms if term in self._terms}
            df = {term: int(self._df[column]) for term, column in columns.items() if self._df[column] > 0}
            return TermStatistics(self._live_docs, self._live_tokens, df)

    def _norm_inverse(self, statistics: TermStatistics | None) -> np.ndarray:
        """Lucene's per-norm cache: 1 / (k1 * (1 - b + b * length / avgdl)), in float32 as Lucene."""
        documents, tokens = (
            (self._live_docs, self._live_tokens) if statistics is None else (statistics.documents, statistics.tokens)
        )
        avgdl = np.float32(tokens / documents) if documents else np.float32(1)
        k1, b = np.float32(self.k1), np.float32(self.b)
        with np.errstate(divide="ignore"):
            return (np.float32(1) / (k1 * ((1 - b) + b * _DECODED_LENGTH / avgdl))).astype(np.float64)

    def _query_weights(self, query: str, statistics: TermStatistics | None) -> tuple[np.ndarray, np.ndarray]:
        """(term columns, weights = count * idf) of a query's terms that occur in live documents; idf from
        `statistics` when given, else from this index."""
        counts = Counter(self.analyzer(query))
        columns = np.array([self._terms.get(t, -1) for t in counts], dtype=np.int64)
        boosts = np.array(list(counts.values()), dtype=np.float32)
        known = columns >= 0
        columns, boosts = columns[known], boosts[known]
        df = self._df[columns]
        present = df > 0  # only terms of live documents here can score here
        columns, boosts, df = columns[present], boosts[present], df[present]
        n = self._live_docs
        if statistics is not None:
            n = statistics.documents
            terms = np.array(list(counts), dtype=object)[known][present]
            # A term the statistics lack was first written after they were gathered: its df here is the best
            # estimate (Elasticsearch's dfs phase falls back to the shard's own statistics the same way).
            df = np.array([statistics.df.get(t, d) for t, d in zip(terms, df.tolist(), strict=True)], np.int64)
        idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        return columns, (boosts * idf).astype(np.float64)

    def _scores(
        self,
        columns_per_query: list[np.ndarray],
        weights_per_query: list[np.ndarray],
        statistics: TermStatistics | None,
    ) -> np.ndarray:
        """Dense BM25 scores [positions, queries] of a block of queries."""
        total = len(self._ids)
        union = np.unique(np.concatenate(columns_per_query)) if columns_per_query else np.zeros(0, np.int64)
        scores = np.zeros((total, len(columns_per_query)), dtype=np.float64)
        if len(union) == 0:
            return scores
        query_matrix = np.zeros((len(union), len(columns_per_query)), dtype=np.float64)
        for q, (columns, weights) in enumerate(zip(columns_per_query, weights_per_query, strict=True)):
            np.add.at(query_matrix[:, q], np.searchsorted(union, columns), weights)
        norm_inverse = self._norm_inverse(statistics)
        norms = _norms(self._lengths)
        for first, matrix in self._segments():
            in_segment = union < matrix.shape[1]
            postings = matrix[:, union[in_segment]]
            # tf / (tf + k1 * (...)) == 1 - 1 / (1 + tf * c[norm]); weights multiply in the product below.
            tf_part = 1.0 - 1.0 / (1.0 + postings.data * norm_inverse[norms[first + postings.indices]])
            postings = sp.csc_matrix((tf_part, postings.indices, postings.indptr), shape=postings.shape)
            scores[first : first + matrix.shape[0]] = postings @ query_matrix[in_segment]
        return scores

    def _results(self, scores: np.ndarray, k: int, admitted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        candidates = np.flatnonzero((scores > 0) & admitted)
        best = _top_k(scores, candidates, k)
        return self._ids[best].copy(), scores[best].astype(np.float32)

    def search(
        self, query: str, k: int, allowed: np.ndarray | None = None, statistics: TermStatistics | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(row ids, scores) of the k best live documents; `statistics` (those of a whole sharded collection,
        covering the query's terms) replace this index's own N, df and avgdl."""
        if k <= 0:
            raise InvalidArgument(f"k must be positive, got {k}")
        with self._lock:
            columns, weights = self._query_weights(query, statistics)
            scores = self._scores([columns], [weights], statistics)[:, 0]
            admitted = self._live
            if allowed is not None:
                admitted = admitted & np.isin(self._ids, np.asarray(allowed, dtype=np.int64))
            return self._results(scores, k, admitted)

    def search_batch(
        self, queries: Sequence[str], k: int, statistics: TermStatistics | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """`search` of each query; `statistics` must then cover the terms of all of them."""
        if k <= 0:
            raise InvalidArgument(f"k must be positive, got {k}")
        with self._lock:
            weighted = [self._query_weights(q, statistics) for q in queries]
            block = max(1, _SCORE_BLOCK // max(1, len(self._ids)))
            results = []
            for start in range(0, len(weighted), block):
                part = weighted[start : start + block]
                scores = self._scores([c for c, _ in part], [w for _, w in part], statistics)
                results.extend(self._results(scores[:, q], k, self._live) for q in range(len(part)))
            return results

    # -- persistence --------------------------------------------------------------------------------

    def save(self, directory: Path) -> list[Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            matrix = self._rows_matrix()
            state = {
                "format": 1,
                "k1": self.k1,
                "b": self.b,
                "stopwords": sorted(self.analyzer.stopwords),
                "stem": self.analyzer.stem,
                "terms": sorted(self._terms, key=self._terms.__getitem__),
            }
            state_path, postings_path = directory / _STATE_FILE, directory / _POSTINGS_FILE
            state_path.write_text(json.dumps(state), encoding="utf-8")
            with postings_path.open("wb") as f:
                np.savez(
                    f,
                    ids=self._ids,
                    live=self._live,
                    lengths=self._lengths,
                    indptr=matrix.indptr.astype(np.int64),
                    columns=matrix.indices.astype(np.int64),
                    tf=matrix.data,
                )
        return [state_path, postings_path]

    @classmethod
    def load(cls, directory: Path) -> BM25Index:
        directory = Path(directory)
        state = json.loads((directory / _STATE_FILE).read_text(encoding="utf-8"))
        if state.get("format") != 1:
            raise FailedPrecondition(f"{directory / _STATE_FILE}: unknown BM25 format {state.get('format')}")
        index = cls(state["k1"], state["b"], Analyzer(frozenset(state["stopwords"]), bool(state["stem"])))
        with np.load(directory / _POSTINGS_FILE) as saved:
            ids, live, lengths = saved["ids"], saved["live"], saved["lengths"]
            indptr, columns, tf = saved["indptr"], saved["columns"], saved["tf"]
        index._terms = {term: column for column, term in enumerate(state["terms"])}
        index._ids, index._live, index._lengths = ids, live, lengths
        index._chunks, index._chunk_starts = [(indptr, columns, tf)], [0]
        index._position = {int(i): p for p, i in enumerate(ids.tolist()) if live[p]}
        # Statistics are recomputed from the live rows rather than trusted from the file.
        rows = np.repeat(np.arange(len(ids)), np.diff(indptr))
        index._df = np.bincount(columns[live[rows]], minlength=len(index._terms)).astype(np.int64)
        index._live_docs = int(((lengths > 0) & live).sum())
        index._live_tokens = int(lengths[live].sum())
        return index
