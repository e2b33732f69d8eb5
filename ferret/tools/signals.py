"""Per-tool retrieval signals kept in memory: description vectors, Tool2Vec vectors, a BM25 field.

Rows follow `ToolSignals.ids` (sorted tool ids). The durable state is in the catalogue; this object is
a view of it that `refresh` brings up to date incrementally (only tools whose text changed are
re-embedded) and `record_usage` updates in O(1) per tool.

Tool2Vec blend. A tool's usage centroid c = normalise(sum / n) is an estimate that is noisy while n is
small, so the served vector is the posterior-mean-like blend

    v = normalise(w * c + (1 - w) * d),   w = n / (n + prior_usages)

with d the description vector: the description counts as `prior_usages` pseudo-usages (default 3, the
cold-start threshold suggested in the research notes). With n = 0 it is the description vector; as n
grows it tends to the pure usage centroid.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import numpy as np

from ferret.encoders.base import EncodeOptions, Encoder, Side
from ferret.tools.catalogue import Tool, ToolCatalogue, text_hash

QUERY_OPTIONS = EncodeOptions(side=Side.QUERY)
DOCUMENT_OPTIONS = EncodeOptions(side=Side.DOCUMENT)

EMBED_CHUNK = 128
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[_\-]+")


def readable_name(name: str) -> str:
    """'ResearchHelper' / 'research_helper' -> 'Research Helper': encoders see words, not one odd token."""
    return " ".join(p for p in _CAMEL.split(name) if p)


def description_text(tool: Tool) -> str:
    """What the description vector embeds: name, description and parameter names."""
    text = f"{readable_name(tool.name)}: {tool.description}"
    params = tool.parameter_names()
    return f"{text} Parameters: {', '.join(params)}." if params else text


def lexical_text(tool: Tool, usage_queries: Sequence[str] = ()) -> str:
    """What BM25 indexes: name, description, parameter names and descriptions, example queries, and the
    queries recorded as using the tool. The usage queries are BM25's lexical counterpart of Tool2Vec: on
    MetaTool's validation part they add about 2.5 points of Recall@5 to Tool2Vec, the description text
    alone adds nothing (README)."""
    parts = [readable_name(tool.name), tool.description]
    for name, spec in tool.parameters.get("properties", {}).items():
        parts.append(readable_name(name))
        if isinstance(spec, dict) and isinstance(spec.get("description"), str):
            parts.append(spec["description"])
    parts.extend(tool.examples)
    parts.extend(usage_queries)
    return "\n".join(parts)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def embed_in_chunks(encoder: Encoder, texts: list[str], options: EncodeOptions) -> np.ndarray:
    """Unit vectors for `texts`, EMBED_CHUNK at a time: encoders take one call as one batch, and a
    whole training set in one batch would need gigabytes of activations."""
    if not texts:
        return np.zeros((0, encoder.info.dimension), np.float32)
    parts = [encoder.embed(texts[i : i + EMBED_CHUNK], options) for i in range(0, len(texts), EMBED_CHUNK)]
    return l2_normalise(np.concatenate(parts))


def blend(
    usage_sum: np.ndarray, usage_count: np.ndarray, description: np.ndarray, prior_usages: float
) -> np.ndarray:
    """Tool2Vec vectors from running sums and counts, blended with description vectors (module docstring)."""
    counts = np.asarray(usage_count, np.float32)[..., None]
    centroid = l2_normalise(usage_sum / np.maximum(counts, 1.0))
    weight = counts / (counts + prior_usages)
    return l2_normalise(weight * centroid + (1.0 - weight) * description)


class ToolSignals:
    def __init__(self, catalogue: ToolCatalogue, encoder: Encoder, prior_usages: float = 3.0):
        self.catalogue = catalogue
        self.encoder = encoder
        self.model = encoder.info.name
        self.prior_usages = prior_usages
        self._lock = threading.RLock()
        self.ids: list[str] = []
        self.tools: dict[str, Tool] = {}
        dim = encoder.info.dimension
        self.description = np.zeros((0, dim), np.float32)
        self.usage_sum = np.zeros((0, dim), np.float32)
        self.usage_count = np.zeros(0, np.int64)
        self.usage_queries: dict[str, list[str]] = {}
        self._tool2vec: np.ndarray | None = None
        self._bm25 = None
        self._lexical_stale: set[str] = set()  # tools whose BM25 document lags their usage queries
        self.refresh()

    # ---- state -------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Bring the view in line with the catalogue; embeds only descriptions whose text changed."""
        with self._lock:
            tools = self.catalogue.list()
            cached = self.catalogue.description_vectors(self.model)
            texts = {t.id: description_text(t) for t in tools}
            stale = [t.id for t in tools if cached.get(t.id, ("",))[0] != text_hash(texts[t.id])]
            if stale:
                vectors = embed_in_chunks(self.encoder, [texts[i] for i in stale], DOCUMENT_OPTIONS)
                fresh = {i: (text_hash(texts[i]), v) for i, v in zip(stale, vectors, strict=True)}
                self.catalogue.store_description_vectors(self.model, fresh)
                cached.update(fresh)
            sums = self.catalogue.usage_sums(self.model)
            dim = self.encoder.info.dimension
            self.ids = [t.id for t in tools]
            self.tools = {t.id: t for t in tools}
            self.description = (
                l2_normalise(np.stack([cached[i][1] for i in self.ids]))
                if tools
                else np.zeros((0, dim), np.float32)
            )
            zero = (np.zeros(dim, np.float32), 0)
            self.usage_sum = (
                np.stack([sums.get(i, zero)[0] for i in self.ids])
                if tools
                else np.zeros((0, dim), np.float32)
            )
            self.usage_count = np.array([sums.get(i, zero)[1] for i in self.ids], dtype=np.int64)
            self.usage_queries = {i: [] for i in self.ids}
            for record in self.catalogue.usage(self.model):
                for tool_id in dict.fromkeys(record.tool_ids):
                    self.usage_queries[tool_id].append(record.query)
            self._tool2vec = None
            self._bm25 = None
            self._lexical_stale.clear()

    def record_usage(self, usages: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Durably record (query, tool ids) pairs; each tool's Tool2Vec sum grows by its queries' vectors."""
        vectors = self.embed_queries([query for query, _ in usages])
        with self._lock:
            self.catalogue.record_usage(usages, self.model, vectors)
            row_of = {tool_id: row for row, tool_id in enumerate(self.ids)}
            for (_, tool_ids), vector in zip(usages, vectors, strict=True):
                rows = [row_of[i] for i in dict.fromkeys(tool_ids)]
                self.usage_sum[rows] += vector
                self.usage_count[rows] += 1
            for query, tool_ids in usages:
                for tool_id in dict.fromkeys(tool_ids):
                    self.usage_queries[tool_id].append(query)
                    self._lexical_stale.add(tool_id)
            self._tool2vec = None

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        return embed_in_chunks(self.encoder, list(queries), QUERY_OPTIONS)

    def tool2vec(self) -> np.ndarray:
        """[tools, dim] blended Tool2Vec vectors (see the module docstring), unit length."""
        with self._lock:
            if self._tool2vec is None:
                self._tool2vec = blend(self.usage_sum, self.usage_count, self.description, self.prior_usages)
            return self._tool2vec

    # ---- scores ------------------------------------------------------------------------------------
    def description_scores(self, query_vectors: np.ndarray) -> np.ndarray:
        return query_vectors @ self.description.T

    def tool2vec_scores(self, query_vectors: np.ndarray) -> np.ndarray:
        return query_vectors @ self.tool2vec().T

    def bm25_scores(self, queries: Sequence[str]) -> np.ndarray:
        """[queries, tools] BM25 scores, 0 where a tool matches no query term."""
        out = np.zeros((len(queries), len(self.ids)), np.float32)
        if not self.ids:
            return out
        for row, (ids, scores) in enumerate(self._lexical_index().search_batch(list(queries), len(self.ids))):
            out[row, ids] = scores
        return out

    def _lexical_index(self):
        """The BM25 index over `lexical_text` (row = position in `ids`), built on first use after the
        tool set changed; after RecordUsage only the documents of the tools that gained queries are
        re-analysed."""
        from ferret.indexing.bm25 import BM25Index

        with self._lock:
            row_of = {tool_id: row for row, tool_id in enumerate(self.ids)}
            if self._bm25 is None:
                self._bm25 = BM25Index()
                stale = self.ids
            else:
                stale = sorted(self._lexical_stale)
                self._bm25.delete(np.array([row_of[i] for i in stale], dtype=np.int64))
            if stale:
                self._bm25.add(
                    np.array([row_of[i] for i in stale], dtype=np.int64),
                    [lexical_text(self.tools[i], self.usage_queries[i]) for i in stale],
                )
            self._lexical_stale.clear()
            return self._bm25
