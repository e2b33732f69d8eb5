"""Tool retrieval latency for one query over the MetaTool catalogue (199 tools), in process.

Ferret's RetrieveTools path (embed query, the mode's signals: Tool2Vec and BM25 in hybrid, fusion, filters) beside
the same query embedded by the same model and searched with a FAISS IndexFlatIP over the same Tool2Vec
matrix (the peer doing the dense part of the work). Prints p50/p99 in ms and Ferret / peer ratios.
The gRPC column comes with the ToolsService (not built on this branch yet).

    PYTHONPATH=$PWD FERRET_DATASETS=/work/shared/datasets python bench/tools_latency.py --every 8
    (--every 1 --cache FILE.npz: the full usage, with the catalogue's query embeddings from the cache)
"""

from __future__ import annotations

import argparse
import tempfile
import time

import faiss
import numpy as np

from ferret.datasets import dataset_path
from ferret.tools import evaluate as ev
from ferret.tools.cli import build_engine, default_encoder
from ferret.tools.retriever import Mode, RetrieveRequest


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--every", type=int, default=8, help="usage queries: every N-th train example")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cache", help="embedding cache (.npz) for building the catalogue")
    args = parser.parse_args()
    root = dataset_path("tools/metatool")
    if root is None:
        raise SystemExit("MetaTool not found; set FERRET_DATASETS")
    data = ev.load(root)
    data = ev.ToolDataset(data.tools, data.train[:: args.every], data.tests)
    queries = [e.query for e in data.tests["single"][: args.queries]]
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_engine(data, tmp, default_encoder(args.cache))
        encoder = default_encoder()  # uncached: both columns pay for embedding the query
        engine.signals.encoder = encoder
        index = faiss.IndexFlatIP(engine.signals.tool2vec().shape[1])
        index.add(engine.signals.tool2vec())
        rows = []
        for label, mode in (("hybrid", Mode.HYBRID), ("tool2vec", Mode.TOOL2VEC), ("bm25", Mode.BM25)):
            ferret_t, peer_t = [], []
            for q in queries:
                start = time.perf_counter()
                engine.retrieve_tools(RetrieveRequest(q, k=5, mode=mode))
                ferret_t.append(time.perf_counter() - start)
                start = time.perf_counter()
                index.search(engine.signals.embed_queries([q]), 5)
                peer_t.append(time.perf_counter() - start)
            rows.append((label, *percentiles(ferret_t), *percentiles(peer_t)))
        engine.close()
    print("| mode | Ferret p50 ms | Ferret p99 ms | embed+FAISS flat p50 ms | p99 ms | p50 ratio |")
    print("|---|---|---|---|---|---|")
    for label, f50, f99, p50, p99 in rows:
        print(f"| {label} | {f50:.2f} | {f99:.2f} | {p50:.2f} | {p99:.2f} | {f50 / p50:.2f} |")


if __name__ == "__main__":
    main()
