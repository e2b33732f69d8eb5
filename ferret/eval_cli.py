"""`ferret eval beir`: retrieval quality of a BEIR-format folder through a real Ferret server.

    ferret eval beir ../shared/datasets/beir/scifact --retriever hybrid [--fusion min-max] [--json]

Without `--address` it starts a server in-process on `--data-dir`; with it, it uses that running server.
Either way the corpus goes in through the gRPC client (`Upsert`) and the queries through `BatchQuery`:
one path for local and remote servers, and it measures what a client gets. The collection is named after
the corpus bytes and the dense model, so a second run (any retriever) reuses it; a build cut short is
completed by upserting only the documents `Get` reports missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

DENSE_FIELD = "dense"
BM25_FIELD = "bm25"
RETRIEVERS = ("bm25", "dense", "hybrid")
FUSIONS = ("rrf", "min-max", "z-score")
DEFAULT_FUSION = "min-max"
UPSERT_BATCH = 128
QUERY_BATCH = 64  # queries per BatchQuery call (the server takes up to 256)
GET_BATCH = 1000
CALL_TIMEOUT_S = 600.0


def add_eval(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="evaluate retrieval quality")
    commands = p.add_subparsers(dest="eval_command", required=True)
    beir = commands.add_parser("beir", help="nDCG@10, Recall@100 and MRR@10 on a BEIR-format folder")
    beir.add_argument("folder", metavar="DATA_DIR", help="BEIR folder: corpus.jsonl(.gz), queries.jsonl, qrels/")
    beir.add_argument("--retriever", required=True, choices=RETRIEVERS)
    beir.add_argument("--fusion", choices=FUSIONS, default=DEFAULT_FUSION,
                      help=f"hybrid only: RRF (k=60) or a sum of normalised scores (default {DEFAULT_FUSION})")
    beir.add_argument("--split", default="test", help="qrels/<split>.tsv (default test)")
    beir.add_argument("--model", default="all-MiniLM-L6-v2", help="dense model (default all-MiniLM-L6-v2)")
    beir.add_argument("--limit-queries", type=int, help="evaluate only the first N queries of the split")
    beir.add_argument("--address", help="HOST:PORT of a running server (default: start one in-process)")
    beir.add_argument("--api-key", help="API key of the server at --address")
    beir.add_argument("--data-dir", default=str(Path.home() / ".cache" / "ferret" / "eval"),
                      help="data directory of the in-process server (default ~/.cache/ferret/eval)")
    beir.add_argument("--config", help="TOML config of the in-process server's models (default: embedded)")
    beir.add_argument("--json", action="store_true", help="print one JSON object")
    beir.add_argument("--quiet", action="store_true", help="no progress on stderr")
    beir.set_defaults(func=beir_command)


def collection_name(dataset: str, corpus_sha256: str, model: str) -> str:
    """Same corpus bytes and dense model -> same collection, so runs reuse it."""
    import hashlib

    key = hashlib.sha256(f"{corpus_sha256}\n{model}".encode()).hexdigest()[:16]
    return f"beir-{re.sub(r'[^A-Za-z0-9_.-]', '_', dataset)[:80]}-{key}"


def collection_schema(model: str) -> dict:
    return {"dense": [{"name": DENSE_FIELD, "encoder": model}], "sparse": [{"name": BM25_FIELD, "encoder": "bm25"}]}


def fusion_method(name: str):
    from ferret.indexing.fusion import RRF, WeightedSum

    return RRF() if name == "rrf" else WeightedSum(name)


@contextmanager
def _server(args: argparse.Namespace) -> Iterator[str]:
    """The address to talk to: --address, or an in-process server on --data-dir for the duration."""
    if args.address:
        yield args.address
        return
    from ferret.server.app import ServerThread
    from ferret.server.config import load_config
    from ferret.server.logs import configure_logging

    config = load_config(args.config)
    config = replace(config, server=replace(config.server, host="127.0.0.1", port=0, data_dir=args.data_dir,
                                            metrics_port=None, api_key=None, tls_cert=None, tls_key=None))
    configure_logging("WARNING", json_logs=False)
    os.makedirs(args.data_dir, exist_ok=True)
    with ServerThread(config) as server:
        server.wait_ready()
        yield server.address


def _missing_ids(client, name: str, ids: list[str]) -> list[str]:
    missing: list[str] = []
    for start in range(0, len(ids), GET_BATCH):
        missing += client.get(name, ids[start : start + GET_BATCH], timeout=CALL_TIMEOUT_S).missing_ids
    return missing


def ensure_collection(client, name: str, corpus: Path, model: str, progress: bool) -> int:
    """Create and fill collection `name` from `corpus` unless it already holds every document; its size."""
    import grpc
    from tqdm import tqdm

    from ferret.indexing.build import read_corpus

    documents = list(read_corpus(corpus))
    try:
        count = client.get_collection(name, timeout=CALL_TIMEOUT_S).count
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        client.create_collection(name, collection_schema(model), timeout=CALL_TIMEOUT_S)
        count = 0
    if count == len(documents):
        return count
    wanted = set(_missing_ids(client, name, [d.id for d in documents])) if count else None
    todo = [d for d in documents if wanted is None or d.id in wanted]
    with tqdm(total=len(todo), unit="docs", desc=f"upserting {name}", disable=not progress,
              file=sys.stderr, mininterval=1.0) as bar:
        for start in range(0, len(todo), UPSERT_BATCH):
            batch = todo[start : start + UPSERT_BATCH]
            client.upsert(name, batch, timeout=CALL_TIMEOUT_S)
            bar.update(len(batch))
    return client.get_collection(name, timeout=CALL_TIMEOUT_S).count


def search_all(
    client, name: str, queries, retriever: str, fusion: str, progress: bool
) -> dict[str, list[tuple[str, float]]]:
    """query id -> (doc id, score) best first (RANKING_DEPTH + 1 deep, so that a self-hit can be dropped)."""
    from tqdm import tqdm

    from ferret.client import query_message
    from ferret.evaluation.beir import RANKING_DEPTH
    from ferret.indexing.fields import SubSearch

    depth = RANKING_DEPTH + 1
    fields = {"bm25": [BM25_FIELD], "dense": [DENSE_FIELD], "hybrid": [BM25_FIELD, DENSE_FIELD]}[retriever]
    method = fusion_method(fusion)
    run: dict[str, list[tuple[str, float]]] = {}
    with tqdm(total=len(queries), unit="queries", desc="searching", disable=not progress,
              file=sys.stderr, mininterval=1.0) as bar:
        for start in range(0, len(queries), QUERY_BATCH):
            chunk = queries[start : start + QUERY_BATCH]
            messages = [query_message(name, [SubSearch(f, text=q.text, limit=depth) for f in fields], method,
                                      limit=depth) for q in chunk]
            results = client.batch_query(messages, timeout=CALL_TIMEOUT_S)
            for query, result in zip(chunk, results, strict=True):
                run[query.id] = [(hit.id, hit.score) for hit in result.hits]
            bar.update(len(chunk))
    return run


def run_beir(args: argparse.Namespace) -> dict:
    """Build or reuse the collection, search every query, and measure; the JSON report."""
    from ferret.client import Client
    from ferret.evaluation.beir import RANKING_DEPTH, drop_self_hits, evaluate, load_beir
    from ferret.indexing.snapshot import sha256_file

    if args.limit_queries is not None and args.limit_queries < 1:
        from ferret.errors import InvalidArgument

        raise InvalidArgument(f"--limit-queries must be at least 1, not {args.limit_queries}")
    data = load_beir(args.folder, args.split)
    queries = data.queries[: args.limit_queries]
    name = collection_name(data.name, sha256_file(data.corpus), args.model)
    progress = not args.quiet
    with _server(args) as address, Client(address, api_key=args.api_key, timeout=CALL_TIMEOUT_S) as client:
        client.wait_ready()
        started = time.perf_counter()
        documents = ensure_collection(client, name, data.corpus, args.model, progress)
        build_seconds = time.perf_counter() - started
        started = time.perf_counter()
        run = search_all(client, name, queries, args.retriever, args.fusion, progress)
        search_seconds = time.perf_counter() - started
    run = {q: ranking[:RANKING_DEPTH] for q, ranking in drop_self_hits(run).items()}
    return {
        "dataset": data.name, "split": args.split, "retriever": args.retriever,
        "fusion": args.fusion if args.retriever == "hybrid" else None,
        "model": args.model if args.retriever != "bm25" else None,
        **evaluate(data.qrels, run),
        "queries": len(queries), "documents": documents, "collection": name,
        "build_seconds": round(build_seconds, 2), "queries_per_second": round(len(queries) / search_seconds, 1),
    }


def beir_command(args: argparse.Namespace) -> int:
    import grpc

    from ferret.encoders.base import ModelLoadError
    from ferret.errors import FerretError
    from ferret.evaluation.beir import MEASURES
    from ferret.server.config import ConfigError

    try:
        report = run_beir(args)
    except (FerretError, ConfigError, ModelLoadError) as exc:
        print(f"ferret eval beir: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"ferret eval beir: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
        return 0
    method = {"bm25": "BM25", "dense": report["model"], "hybrid": f"BM25 + {report['model']}, {report['fusion']}"}
    print(f"{report['dataset']} ({report['split']}, {report['queries']} queries, {report['documents']} docs), "
          f"{method[args.retriever]}")
    for key in MEASURES:
        print(f"  {key:<11} {report[key]:.4f}")
    print(f"  collection {report['collection']} (ready in {report['build_seconds']:.1f} s), "
          f"{report['queries_per_second']:.1f} queries/s")
    return 0
