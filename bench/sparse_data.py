"""SPLADE-like sparse vectors for benchmarks and tests.

Term ids follow a Zipf law over the vocabulary (a few frequent terms, a long tail), as learned sparse
models' activations do; documents get ~100-200 non-zeros, queries ~20-40, weights positive and skewed
(log-normal). Queries are drawn from the same distribution, so their terms overlap documents the way
real queries do.
"""

from __future__ import annotations

import numpy as np

from ferret.encoders.base import SparseVector


def _vectors(rng: np.random.Generator, count: int, low: int, high: int, vocabulary: int, zipf: float):
    ranks = np.arange(1, vocabulary + 1, dtype=np.float64)
    probabilities = ranks**-zipf
    probabilities /= probabilities.sum()
    # A fixed random permutation so that frequent terms are not simply the small ids.
    term_of_rank = np.random.default_rng(12345).permutation(vocabulary).astype(np.uint32)
    cumulative = np.cumsum(probabilities)
    sizes = rng.integers(low, high + 1, size=count)
    # Inverse-CDF sampling of all draws at once; twice the target size leaves room for repeats.
    drawn = np.minimum(np.searchsorted(cumulative, rng.random(int(2 * sizes.sum()))), vocabulary - 1)
    starts = np.concatenate([[0], np.cumsum(2 * sizes)])
    out = []
    for size, start, end in zip(sizes, starts[:-1], starts[1:], strict=True):
        terms = np.unique(term_of_rank[drawn[start:end]])
        terms = np.sort(rng.permutation(terms)[:size])
        out.append(SparseVector(terms, rng.lognormal(0.0, 0.6, size=len(terms)).astype(np.float32)))
    return out


def sparse_corpus(
    documents: int,
    queries: int,
    vocabulary: int = 30_000,
    zipf: float = 1.0,
    seed: int = 0,
) -> tuple[list[SparseVector], list[SparseVector]]:
    """(documents, queries) of SPLADE-like sparse vectors."""
    rng = np.random.default_rng(seed)
    return (
        _vectors(rng, documents, 100, 200, vocabulary, zipf),
        _vectors(rng, queries, 20, 40, vocabulary, zipf),
    )
