"""Overhead of Ferret's dense index layer over raw FAISS on the same vectors and queries.

Prints one table: queries/s of a raw `faiss.index_factory` index and of `DenseIndex` (id mapping,
cosine normalisation, result padding) for each spec, batched and one query at a time, and their ratio
(target: raw / Ferret <= 1.2). Also a filtered search (`allowed` = 10% of ids) for Ferret alone.

    PYTHONPATH=$PWD python bench/dense_index.py --docs 100000 --dim 384 --queries 1000
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from ferret.indexing.dense import DenseIndex


def rates(fns, n: int, repeat: int = 5) -> list[float]:
    """Queries/s of each function, best of `repeat` runs, the functions interleaved so that load from
    other processes hits them alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return [n / b for b in best]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--specs", default="Flat;HNSW32;IVF256,Flat", help="factory strings separated by ';'")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.docs, args.dim)).astype(np.float32)
    faiss.normalize_L2(vectors)
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    faiss.normalize_L2(queries)
    ids = np.arange(args.docs, dtype=np.int64) * 7 + 3  # not positions: the id map must work
    allowed = np.sort(rng.choice(ids, args.docs // 10, replace=False))
    specs = [s.strip() for s in args.specs.split(";") if s.strip()]

    print(
        f"{args.docs} docs x {args.dim} dims, {args.queries} queries, k={args.k}, faiss {faiss.__version__}, "
        f"{faiss.omp_get_max_threads()} threads"
    )
    print(f"{'spec':<14} {'mode':<8} {'raw FAISS q/s':>14} {'Ferret q/s':>12} {'raw/Ferret':>11}")
    for spec in specs:
        raw = faiss.IndexIDMap2(faiss.index_factory(args.dim, spec, faiss.METRIC_INNER_PRODUCT))
        ours = DenseIndex(args.dim, "cosine", spec)
        if not raw.is_trained:
            raw.train(vectors)
        raw.add_with_ids(vectors, ids)
        ours.add(ids, vectors)
        assert len(ours) == args.docs and ours._pending is None
        for mode, batch in (("batch", args.queries), ("single", 1)):
            n = args.queries if batch > 1 else min(args.queries, 200)

            def run_raw(batch=batch, n=n, raw=raw):
                for start in range(0, n, batch):
                    raw.search(queries[start : start + batch], args.k)

            def run_ours(batch=batch, n=n, ours=ours):
                for start in range(0, n, batch):
                    ours.search(queries[start : start + batch], args.k)

            r, o = rates([run_raw, run_ours], n)
            print(f"{spec:<14} {mode:<8} {r:>14.0f} {o:>12.0f} {r / o:>11.2f}")
        (filtered,) = rates([lambda ours=ours: ours.search(queries, args.k, allowed=allowed)], args.queries)
        print(f"{spec:<14} {'filter':<8} {'':>14} {filtered:>12.0f} {'':>11}")


if __name__ == "__main__":
    main()
