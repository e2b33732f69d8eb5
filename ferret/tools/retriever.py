"""Tool retrieval: first-stage signals, hybrid fusion, filters, optional second stages and set mode.

`ToolRetriever.retrieve_batch` is what `RetrieveTools` / `RetrieveToolsBatch` wrap. Each hit carries the
score of every signal that was computed for it.

Hybrid fusion is a weighted sum of the description cosine, the Tool2Vec cosine and the BM25 score
divided by the query's best BM25 score (so all three lie in comparable ranges). The default weights
were chosen with `ferret tools tune` on a validation part held out from MetaTool's train split, never on
its test part (README): BM25 (whose field holds the usage queries) at 0.4 beside Tool2Vec; the
description cosine adds nothing once a tool has usage (Tool2Vec already blends the description in for
tools with little usage), so its weight is 0. Reciprocal-rank fusion of the same signals scored lower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from ferret.errors import FailedPrecondition, InvalidArgument
from ferret.tools.signals import ToolSignals


class Mode(StrEnum):
    DESCRIPTION = "description"
    TOOL2VEC = "tool2vec"
    BM25 = "bm25"
    HYBRID = "hybrid"


@dataclass(frozen=True)
class HybridWeights:
    tool2vec: float = 1.0
    description: float = 0.0
    bm25: float = 0.4


DEFAULT_WEIGHTS = HybridWeights()


@dataclass(frozen=True)
class SetOptions:
    """Set mode: return hits while their probability (second stage) or score stays >= `threshold`.

    At least one hit and at most `max_tools` hits (and never more than k) come back.
    """

    threshold: float = 0.5
    max_tools: int = 10


@dataclass(frozen=True)
class RetrieveRequest:
    query: str
    k: int = 10
    mode: Mode = Mode.HYBRID
    instruction: str = ""
    namespace: str | None = None
    tags: tuple[str, ...] = ()
    # None: the retriever's default (on only when configured so, and skipped when stale);
    # True: required (FailedPrecondition when missing or stale); False: off.
    classifier: bool | None = None
    rerank: bool | None = None
    set_mode: SetOptions | None = None


@dataclass
class ToolHit:
    tool_id: str
    name: str
    score: float
    signals: dict[str, float] = field(default_factory=dict)
    probability: float | None = None


class SecondStage:
    """A trained stage that turns first-stage candidates into probabilities."""

    name: str

    def is_stale(self, signals: ToolSignals) -> str | None:
        """Why this stage no longer fits the catalogue, or None when it fits."""
        raise NotImplementedError

    def probabilities(
        self, signals: ToolSignals, query_vectors: np.ndarray, candidates: np.ndarray, first_stage: np.ndarray
    ) -> np.ndarray:
        """[queries, candidates] probabilities; `candidates` holds rows of `signals.ids`."""
        raise NotImplementedError


MAX_K = 1000


class ToolRetriever:
    def __init__(
        self,
        signals: ToolSignals,
        weights: HybridWeights = DEFAULT_WEIGHTS,
        candidates: int = 64,
        classifier: SecondStage | None = None,
        refiner: SecondStage | None = None,
        classifier_default: bool = False,
        rerank_default: bool = False,
    ):
        self.signals = signals
        self.weights = weights
        self.candidates = candidates
        self.classifier = classifier
        self.refiner = refiner
        self.classifier_default = classifier_default
        self.rerank_default = rerank_default

    def retrieve(self, request: RetrieveRequest) -> list[ToolHit]:
        return self.retrieve_batch([request])[0]

    def retrieve_batch(self, requests: Sequence[RetrieveRequest]) -> list[list[ToolHit]]:
        """Requests sharing mode and second stages are scored together; each keeps its own k and filters."""
        if not requests:
            return []
        for request in requests:
            _check(request)
        results: list[list[ToolHit] | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, request in enumerate(requests):
            stages = tuple(s.name for s in self._stages(request))
            groups.setdefault((Mode(request.mode), stages), []).append(i)
        for (mode, _), members in groups.items():
            batch = [requests[i] for i in members]
            for i, hits in zip(members, self._retrieve_group(batch, mode), strict=True):
                results[i] = hits
        return results  # type: ignore[return-value]

    # ---- internals ---------------------------------------------------------------------------------
    def _stages(self, request: RetrieveRequest) -> list[SecondStage]:
        chosen = []
        for label, stage, asked, default in (
            ("classifier", self.classifier, request.classifier, self.classifier_default),
            ("refiner", self.refiner, request.rerank, self.rerank_default),
        ):
            if asked is False or (asked is None and not default):
                continue
            if stage is None:
                if asked:
                    raise FailedPrecondition(
                        f"no trained {label} is loaded; train one with "
                        f"`ferret tools train-{'mlc' if label == 'classifier' else 'refiner'}`"
                    )
                continue
            reason = stage.is_stale(self.signals)
            if reason is not None:
                if asked:
                    raise FailedPrecondition(
                        f"the {label} is stale: {reason}; retrain it or retrieve without it"
                    )
                continue  # default-on stages switch themselves off when the catalogue moved on
            chosen.append(stage)
        return chosen

    def _retrieve_group(self, requests: list[RetrieveRequest], mode: Mode) -> list[list[ToolHit]]:
        signals = self.signals
        with signals._lock:
            if not signals.ids:
                raise FailedPrecondition("the tool catalogue is empty; UpsertTools before retrieving")
            texts = [f"{r.instruction.strip()} {r.query}".strip() for r in requests]
            per_signal = self._signal_scores(texts, mode)
            first = self._fuse(per_signal, mode)
            allowed = self._filter_mask(requests)
            first = np.where(allowed, first, -np.inf)
            stages = self._stages(requests[0])
            n_candidates = max(max(r.k for r in requests), self.candidates if stages else 0)
            n_candidates = min(n_candidates, len(signals.ids))
            candidates = np.argsort(-first, axis=1, kind="stable")[:, :n_candidates]
            final = np.take_along_axis(first, candidates, axis=1)
            probability = None
            if stages:
                query_vectors = per_signal["query_vectors"]
                probability = np.mean(
                    [s.probabilities(signals, query_vectors, candidates, final) for s in stages], axis=0
                )
                probability = np.where(np.isfinite(final), probability, -np.inf)
                order = np.argsort(-probability, axis=1, kind="stable")
                candidates = np.take_along_axis(candidates, order, axis=1)
                final = np.take_along_axis(probability, order, axis=1)
                probability = final
            out = []
            for row, request in enumerate(requests):
                hits = []
                for col in range(min(request.k, n_candidates)):
                    score = float(final[row, col])
                    if not np.isfinite(score):
                        break
                    tool_row = int(candidates[row, col])
                    tool_id = signals.ids[tool_row]
                    hits.append(
                        ToolHit(
                            tool_id=tool_id,
                            name=signals.tools[tool_id].name,
                            score=score,
                            signals={
                                k: float(v[row, tool_row])
                                for k, v in per_signal.items()
                                if k != "query_vectors"
                            },
                            probability=None if probability is None else score,
                        )
                    )
                out.append(_cut_set(hits, request.set_mode))
            return out

    def _signal_scores(self, texts: list[str], mode: Mode) -> dict[str, np.ndarray]:
        signals = self.signals
        out: dict[str, np.ndarray] = {}
        need_vectors = mode is not Mode.BM25 or self.classifier is not None or self.refiner is not None
        if need_vectors:
            out["query_vectors"] = signals.embed_queries(texts)
        if mode is Mode.DESCRIPTION or (mode is Mode.HYBRID and self.weights.description):
            out["description"] = signals.description_scores(out["query_vectors"])
        if mode in (Mode.TOOL2VEC, Mode.HYBRID):
            out["tool2vec"] = signals.tool2vec_scores(out["query_vectors"])
        if mode is Mode.BM25 or (mode is Mode.HYBRID and self.weights.bm25):
            out["bm25"] = signals.bm25_scores(texts)
        return out

    def _fuse(self, per_signal: dict[str, np.ndarray], mode: Mode) -> np.ndarray:
        if mode is Mode.BM25:
            # A tool that shares no term with the query is no BM25 result: it is not returned, rather
            # than padding the list with arbitrary zero-score tools.
            bm25 = per_signal["bm25"]
            return np.where(bm25 > 0, bm25, -np.inf)
        if mode is not Mode.HYBRID:
            return per_signal[mode.value].copy()
        w = self.weights
        fused = w.tool2vec * per_signal["tool2vec"]
        if "description" in per_signal:
            fused = fused + w.description * per_signal["description"]
        if "bm25" in per_signal:
            bm25 = per_signal["bm25"]
            fused = fused + w.bm25 * bm25 / np.maximum(bm25.max(axis=1, keepdims=True), 1e-9)
        return fused

    def _filter_mask(self, requests: list[RetrieveRequest]) -> np.ndarray:
        tools = [self.signals.tools[i] for i in self.signals.ids]
        mask = np.ones((len(requests), len(tools)), dtype=bool)
        for row, r in enumerate(requests):
            if r.namespace is None and not r.tags:
                continue
            wanted = set(r.tags)
            mask[row] = [
                (r.namespace is None or t.namespace == r.namespace) and wanted.issubset(t.tags) for t in tools
            ]
        return mask


def _check(request: RetrieveRequest) -> None:
    if not request.query.strip():
        raise InvalidArgument("the query is empty; send the user's request text")
    if not 1 <= request.k <= MAX_K:
        raise InvalidArgument(f"k={request.k} is out of range; ask for 1..{MAX_K} tools")
    try:
        Mode(request.mode)
    except ValueError:
        raise InvalidArgument(
            f"unknown mode {request.mode!r}; use one of {', '.join(m.value for m in Mode)}"
        ) from None
    s = request.set_mode
    if s is not None and (s.max_tools < 1 or not np.isfinite(s.threshold)):
        raise InvalidArgument("set mode needs max_tools >= 1 and a finite threshold")


def _cut_set(hits: list[ToolHit], options: SetOptions | None) -> list[ToolHit]:
    """Set mode: the leading hits whose probability (else score) reaches the threshold, at least one."""
    if options is None or not hits:
        return hits
    kept = [
        h
        for h in hits[: options.max_tools]
        if (h.probability if h.probability is not None else h.score) >= options.threshold
    ]
    return kept or hits[:1]
