"""Capacity per index type: bytes per document of each index, and documents per GiB of RAM.

Builds each index kind of a collection field the way the engine does (`DenseIndex` with a FAISS factory
string, `SparseIndex` with its Seismic static segment, `BM25Index`), measures the process RSS growth
while the index is built (what a shard holds in RAM) and its saved snapshot size, and prints one table.
The durable store (SQLite: text, metadata, vectors) is measured separately: it lives on disk.

    PYTHONPATH=$PWD python bench/capacity.py --docs 20000 --dim 384
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sparse_data import sparse_corpus  # noqa: E402

from ferret.datasets import dataset_path  # noqa: E402
from ferret.indexing.bm25 import BM25Index  # noqa: E402
from ferret.indexing.dense import DenseIndex  # noqa: E402
from ferret.indexing.schema import CollectionSchema, DenseField  # noqa: E402
from ferret.indexing.sparse import SparseIndex  # noqa: E402
from ferret.indexing.store import Document, DocumentStore  # noqa: E402

GIB = 1 << 30


def measure(build: Callable[[], object], directory: Path) -> tuple[float, float, float]:
    """(RSS growth bytes, saved bytes, seconds) of building an index and saving it."""
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    started = time.perf_counter()
    index = build()
    seconds = time.perf_counter() - started
    grown = process.memory_info().rss - before
    directory.mkdir(parents=True)
    saved = sum(p.stat().st_size for p in index.save(directory))
    del index
    gc.collect()
    return grown, saved, seconds


def scifact_texts(limit: int) -> list[str]:
    folder = dataset_path("beir/scifact")
    if folder is None:
        raise SystemExit("dataset beir/scifact not found (set FERRET_DATASETS)")
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(limit), f, strict=False)]
    return [f"{r['title']} {r['text']}" for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20_000, help="documents per dense/sparse index")
    parser.add_argument("--dim", type=int, default=384, help="dense dimension (384 = all-MiniLM-L6-v2)")
    parser.add_argument("--ivf", default="IVF256,PQ48", help="the IVF-PQ factory string")
    args = parser.parse_args()
    n = args.docs
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, args.dim)).astype(np.float32)
    ids = np.arange(n, dtype=np.int64)
    sparse_docs, _ = sparse_corpus(n, 1)
    texts = scifact_texts(n)  # SciFact has 5,183 documents: BM25 is measured on those
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def dense(factory: str) -> Callable[[], DenseIndex]:
            def build() -> DenseIndex:
                index = DenseIndex(args.dim, "cosine", factory)
                index.add(ids, vectors)
                return index
            return build

        def sparse() -> SparseIndex:
            index = SparseIndex(approximate=True)
            index.add(ids, sparse_docs)
            index.merge()
            index.wait_for_merge()
            return index

        def bm25() -> BM25Index:
            index = BM25Index()
            index.add(np.arange(len(texts), dtype=np.int64), texts)
            return index

        for name, build, count in (
            ("dense Flat", dense("Flat"), n),
            ("dense HNSW32", dense("HNSW32"), n),
            (f"dense {args.ivf}", dense(args.ivf), n),
            ("sparse (SPLADE-like, Seismic)", sparse, n),
            ("BM25 (SciFact texts)", bm25, len(texts)),
        ):
            grown, saved, seconds = measure(build, root / name.replace(" ", "_").replace(",", "_"))
            rows.append((name, count, grown / count, saved / count, seconds))

        store = DocumentStore(root / "store.db")
        store.create_collection("c", CollectionSchema(dense=(DenseField("v", dim=args.dim),)))
        docs = [Document(str(i), texts[i % len(texts)], {"i": i}, {"v": vectors[i]}) for i in range(n)]
        for start in range(0, n, 1000):
            store.upsert("c", docs[start : start + 1000])
        store.close()
        store_bytes = sum(p.stat().st_size for p in root.glob("store.db*")) / n

    print(f"{n} documents per dense/sparse index, dim {args.dim}; {len(texts)} SciFact texts for BM25")
    # The snapshot is what a served shard loads (a lower bound of its RAM); the RSS growth while building
    # includes training and build temporaries (an upper bound, and what the build host must hold).
    print(f"{'index':<32} {'docs':>6} {'snapshot B/doc':>15} {'build RSS B/doc':>16} "
          f"{'docs/GiB (snapshot)':>20} {'docs/GiB (build RSS)':>21} {'build s':>8}")
    for name, count, ram, disk, seconds in rows:
        print(f"{name:<32} {count:>6} {disk:>15.0f} {ram:>16.0f} {GIB / disk:>20,.0f} "
              f"{GIB / max(ram, disk):>21,.0f} {seconds:>8.1f}")
    print(f"{'store (SQLite: text, metadata, dense vector)':<45} disk B/doc {store_bytes:.0f}")


if __name__ == "__main__":
    main()
