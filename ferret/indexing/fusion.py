"""Fusion of ranked lists from several sub-searches into one ranking.

Two methods, both stateless per query:
- Reciprocal rank fusion: score(d) = sum over sources s of w_s / (k + rank_s(d)), rank from 1
  (Cormack et al. 2009; k = 60 there and in Milvus, Qdrant uses 2).
- Weighted sum of normalised scores: each source's scores are normalised (min-max to [0, 1], or z-score),
  then summed with weights. A document a source did not return counts as that source's lowest
  normalised score (Pyserini's hybrid searcher does the same with the list minimum).
Every fused hit keeps each source's raw score and rank so that a caller can see why it ranked where it did.
Fused scores are not calibrated across queries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ferret.errors import InvalidArgument

NORMALIZATIONS = ("min-max", "z-score")


@dataclass(frozen=True)
class RRF:
    k: float = 60.0

    def __post_init__(self) -> None:
        if not (isinstance(self.k, int | float) and math.isfinite(self.k) and self.k >= 0):
            raise InvalidArgument(f"RRF k must be a finite number >= 0, not {self.k!r}")


@dataclass(frozen=True)
class WeightedSum:
    normalization: str = "min-max"

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise InvalidArgument(
                f"unknown score normalisation {self.normalization!r}; use one of {NORMALIZATIONS}"
            )


Fusion = RRF | WeightedSum


@dataclass(frozen=True)
class SourceHits:
    """One sub-search's result: ids best first (no padding), their raw scores, and the source's weight."""

    name: str
    ids: np.ndarray
    scores: np.ndarray
    weight: float = 1.0


@dataclass(frozen=True)
class SourceScore:
    score: float
    rank: int  # 1 = the source's best


@dataclass
class FusedHit:
    id: int
    score: float
    sources: dict[str, SourceScore] = field(default_factory=dict)


def check_weights(sources: Sequence[SourceHits]) -> None:
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise InvalidArgument(f"sub-search names must be unique; got {names}")
    for s in sources:
        if not (math.isfinite(s.weight) and s.weight >= 0):
            raise InvalidArgument(f"weight of {s.name!r} must be a finite number >= 0, not {s.weight}")
    if sources and not any(s.weight > 0 for s in sources):
        raise InvalidArgument("at least one sub-search needs a weight > 0")


def fuse(sources: Sequence[SourceHits], method: Fusion) -> list[FusedHit]:
    """All documents any source returned, best first (ties broken by id), with per-source score and rank."""
    check_weights(sources)
    hits: dict[int, FusedHit] = {}
    for source in sources:
        contributions = _contributions(source, method)
        for rank, (doc, raw, part) in enumerate(
            zip(source.ids.tolist(), source.scores.tolist(), contributions.tolist(), strict=True), start=1
        ):
            hit = hits.get(doc)
            if hit is None:
                hit = hits[doc] = FusedHit(doc, 0.0)
            hit.sources[source.name] = SourceScore(float(raw), rank)
            hit.score += part
    if isinstance(method, WeightedSum):
        # A document a source missed gets that source's floor (0 after min-max, the lowest z-score).
        for source in sources:
            if len(source.ids):
                floor = source.weight * float(_normalized(source.scores, method.normalization).min())
                for hit in hits.values():
                    if source.name not in hit.sources:
                        hit.score += floor
    return sorted(hits.values(), key=lambda h: (-h.score, h.id))


def _contributions(source: SourceHits, method: Fusion) -> np.ndarray:
    if isinstance(method, RRF):
        return source.weight / (method.k + np.arange(1, len(source.ids) + 1, dtype=np.float64))
    return source.weight * _normalized(source.scores, method.normalization)


def _normalized(scores: np.ndarray, normalization: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if not len(scores):
        return scores
    if normalization == "min-max":
        span = scores.max() - scores.min()
        return (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    std = scores.std()
    return (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)
