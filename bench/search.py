"""Search speed of Ferret's indexes beside their peers, in one run (by hand: minutes on 2 cores).

    PYTHONPATH=. FERRET_DATASETS=/path/to/shared/datasets python bench/search.py [--sparse-docs 100000]

Prints one table: BM25 queries/s of Ferret's BM25Index and Pyserini's LuceneSearcher on SciFact (same
corpus, same test queries, top-100) with their ratio and both nDCG@10 (ir-measures); approximate
(Seismic) vs exact sparse search on generated SPLADE-like vectors with recall@10 of the exact top-10;
and the dense layer's overhead over raw FAISS.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import ir_measures
import numpy as np
from ir_measures import nDCG

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sparse_data import sparse_corpus  # noqa: E402

from ferret.datasets import dataset_path  # noqa: E402
from ferret.indexing.bm25 import BM25Index  # noqa: E402
from ferret.indexing.sparse import SparseIndex  # noqa: E402


def _scifact():
    folder = dataset_path("beir/scifact")
    if folder is None:
        raise SystemExit("beir/scifact not found: set FERRET_DATASETS")
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, score = line.split("\t")
        qrels.setdefault(query_id, {})[doc_id] = int(score)
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = [q for q in map(json.loads, f) if q["_id"] in qrels]
    return docs, queries, qrels


def _ndcg(queries, rankings, qrels) -> float:
    # BEIR convention: a query's own id is never its own hit.
    pairs = zip(queries, rankings, strict=True)
    run = {q["_id"]: {d: s for d, s in ranking if d != q["_id"]} for q, ranking in pairs}
    return ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10]


def bench_bm25(rows: list[tuple[str, str, str]]) -> None:
    from ferret.indexing.lucene import start_jvm

    docs, queries, qrels = _scifact()
    texts = [f"{d['title']} {d['text']}" for d in docs]
    doc_ids = [d["_id"] for d in docs]
    texts_q = [q["text"] for q in queries]
    index = BM25Index()
    index.add(np.arange(len(texts)), texts)
    index.search_batch(texts_q[:5], 100)  # warm-up (builds the term-major matrix)
    start = time.perf_counter()
    ours = index.search_batch(texts_q, 100)
    ferret_qps = len(texts_q) / (time.perf_counter() - start)
    start = time.perf_counter()
    for q in texts_q:
        index.search(q, 100)
    ferret_single_qps = len(texts_q) / (time.perf_counter() - start)
    ranked = [[(doc_ids[i], float(s)) for i, s in zip(*r, strict=True)] for r in ours]
    ferret_ndcg = _ndcg(queries, ranked, qrels)

    start_jvm()
    import tempfile

    from pyserini.index.lucene import LuceneIndexer
    from pyserini.search.lucene import LuceneSearcher

    with tempfile.TemporaryDirectory() as tmp:
        indexer = LuceneIndexer(f"{tmp}/index", threads=1)
        for doc_id, text in zip(doc_ids, texts, strict=True):
            indexer.add_doc_dict({"id": doc_id, "contents": text})
        indexer.close()
        searcher = LuceneSearcher(f"{tmp}/index")
        searcher.set_bm25(0.9, 0.4)
        for q in texts_q[:5]:
            searcher.search(q, 100)
        start = time.perf_counter()
        theirs = [searcher.search(q, 100) for q in texts_q]
        lucene_qps = len(texts_q) / (time.perf_counter() - start)
    lucene_ndcg = _ndcg(queries, [[(h.docid, h.score) for h in hits] for hits in theirs], qrels)
    rows += [
        ("BM25 SciFact q/s, Ferret search_batch", f"{ferret_qps:,.0f}",
         f"x{ferret_qps / lucene_qps:.1f} of Lucene"),
        ("BM25 SciFact q/s, Ferret search (one by one)", f"{ferret_single_qps:,.0f}",
         f"x{ferret_single_qps / lucene_qps:.1f} of Lucene"),
        ("BM25 SciFact q/s, Pyserini LuceneSearcher", f"{lucene_qps:,.0f}", "x1.0"),
        ("BM25 SciFact nDCG@10, Ferret / Pyserini", f"{ferret_ndcg:.4f}", f"{lucene_ndcg:.4f}"),
    ]


def bench_sparse(rows: list[tuple[str, str, str]], documents: int, queries: int) -> None:
    docs, qs = sparse_corpus(documents, queries)
    index = SparseIndex(max_fresh_docs=documents + 1)
    index.add(np.arange(documents), docs)
    start = time.perf_counter()
    index.merge()
    build = time.perf_counter() - start
    start = time.perf_counter()
    exact = [index.search(q, 10, exact=True)[0] for q in qs]
    exact_qps = len(qs) / (time.perf_counter() - start)
    start = time.perf_counter()
    approximate = [index.search(q, 10)[0] for q in qs]
    approximate_qps = len(qs) / (time.perf_counter() - start)
    pairs = zip(approximate, exact, strict=True)
    recall = np.mean([len(set(a.tolist()) & set(e.tolist())) / max(1, len(e)) for a, e in pairs])
    settings = ", ".join(f"{k}={index.params[k]}" for k in ("n_postings", "query_cut", "heap_factor"))
    rows += [
        (f"sparse {documents:,} docs: exact q/s", f"{exact_qps:,.0f}", "x1.0"),
        (f"sparse {documents:,} docs: Seismic q/s", f"{approximate_qps:,.0f}",
         f"x{approximate_qps / exact_qps:.1f}"),
        ("sparse Seismic recall@10 of exact", f"{recall:.4f}", settings),
        ("sparse static segment build (merge) s", f"{build:.1f}", ""),
    ]


def bench_dense(rows: list[tuple[str, str, str]]) -> None:
    """PLACE FOR THE STORE ENGINEER: DenseIndex search vs raw FAISS on the same vectors (target <= 1.2).

    ferret/indexing/dense.py lives on branch `store`; add its rows here when it is merged.
    """
    rows.append(("dense overhead over raw FAISS", "not measured", "DenseIndex is on branch store"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sparse-docs", type=int, default=100_000)
    parser.add_argument("--sparse-queries", type=int, default=500)
    parser.add_argument("--skip", choices=["bm25", "sparse", "dense"], action="append", default=[])
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    if "bm25" not in args.skip:
        bench_bm25(rows)
    if "sparse" not in args.skip:
        bench_sparse(rows, args.sparse_docs, args.sparse_queries)
    if "dense" not in args.skip:
        bench_dense(rows)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'value':>12}  comparison")
    for name, value, comparison in rows:
        print(f"{name:<{width}}  {value:>12}  {comparison}")


if __name__ == "__main__":
    main()
