"""Tool retrieval latency for one query over the MetaTool catalogue (199 tools): gRPC beside in process.

One in-process server (`ServerThread`, loopback) serves the catalogue built from MetaTool's train usage
(every N-th example, through UpsertTools / RecordUsage). For each test query, in turn:
  - gRPC: `RetrieveTools` through the Python client (serialisation, HTTP/2, the server's worker thread);
  - in process: the same search on the server's own `ToolEngine` (embed query, signals, fusion);
  - peer: the query embedded by the same model and searched with a FAISS IndexFlatIP over the same
    Tool2Vec matrix (the dense part of the work, done by the field's library).
Prints p50/p99 in ms and the ratios gRPC / in process and in process / peer. BM25 mode embeds no query,
so its peer ratio compares different work; its gRPC - in-process gap is the transport's own cost.

    PYTHONPATH=$PWD FERRET_DATASETS=/work/shared/datasets python bench/tools_latency.py --every 8
    (--every 1 --cache FILE.npz: the full usage, with the catalogue's query embeddings from the cache)
"""

from __future__ import annotations

import argparse
import tempfile
import time

import faiss
import numpy as np

from ferret.client import Client
from ferret.datasets import dataset_path
from ferret.server.app import ServerThread
from ferret.server.config import parse_config
from ferret.tools import evaluate as ev
from ferret.tools.cli import ServerTarget
from ferret.tools.embedding_cache import CachedEncoder
from ferret.tools.retriever import Mode, RetrieveRequest


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def faiss_search(index: faiss.Index, signals, query: str) -> None:
    index.search(signals.embed_queries([query]), 5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--every", type=int, default=8, help="usage queries: every N-th train example")
    parser.add_argument("--queries", type=int, default=100, help="test queries timed per mode")
    parser.add_argument("--cache", help="embedding cache (.npz) for building the catalogue only")
    args = parser.parse_args()
    root = dataset_path("tools/metatool")
    if root is None:
        raise SystemExit("MetaTool not found; set FERRET_DATASETS")
    data = ev.load(root)
    data = ev.ToolDataset(data.tools, data.train[:: args.every], data.tests)
    queries = [e.query for e in data.tests["single"][: args.queries]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config({"server": {"host": "127.0.0.1", "port": 0, "data_dir": tmp}})
        with ServerThread(config) as server, Client(server.address, timeout=600) as client:
            server.wait_ready()
            engine = server.server.state.tools.engine
            encoder = engine.signals.encoder
            if args.cache:
                engine.signals.encoder = CachedEncoder(encoder, args.cache)
            start = time.perf_counter()
            ServerTarget(client).build(data)
            build_s = time.perf_counter() - start
            if args.cache:
                engine.signals.encoder.save()
                engine.signals.encoder = encoder  # uncached: every column pays for embedding the query
            index = faiss.IndexFlatIP(engine.signals.tool2vec().shape[1])
            index.add(engine.signals.tool2vec())
            for q in queries[:5]:  # warm-up: first calls pay for thread and channel start-up
                client.retrieve_tools(q, k=5)
            for mode in (Mode.HYBRID, Mode.TOOL2VEC, Mode.BM25):
                grpc_t, local_t, peer_t = [], [], []
                for q in queries:
                    grpc_t.append(timed(client.retrieve_tools, q, k=5, mode=mode))
                    local_t.append(timed(engine.retrieve_tools, RetrieveRequest(q, k=5, mode=mode)))
                    peer_t.append(timed(faiss_search, index, engine.signals, q))
                rows.append((mode.value, *percentiles(grpc_t), *percentiles(local_t), *percentiles(peer_t)))
    print(f"catalogue: {len(data.tools)} tools, {len(data.train)} usage queries (built in {build_s:.1f} s); "
          f"{len(queries)} single-tool test queries per mode, k=5")
    print("| mode | gRPC p50 ms | gRPC p99 ms | in-process p50 ms | in-process p99 ms | gRPC/in-process p50 "
          "| embed+FAISS flat p50 ms | p99 ms | in-process/FAISS p50 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, g50, g99, l50, l99, p50, p99 in rows:
        print(f"| {label} | {g50:.2f} | {g99:.2f} | {l50:.2f} | {l99:.2f} | {g50 / l50:.2f} "
              f"| {p50:.2f} | {p99:.2f} | {l50 / p50:.2f} |")


if __name__ == "__main__":
    main()
