"""`ferret tools ...` commands: eval, train-mlc, train-refiner, qta-pairs, train-qta.

The main `ferret` CLI calls `add_tools_commands(subparsers)`; each command stores its handler in
`args.func`. `tools eval` goes through the real server path: the ToolsService of an in-process server
(or of `--address`), fed and queried with the Python client; `run_eval` is the same loop in process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from ferret.client import Client
from ferret.encoders.base import Encoder
from ferret.errors import InvalidArgument
from ferret.server.app import ServerThread
from ferret.server.config import parse_config
from ferret.tools import evaluate as ev
from ferret.tools.embedding_cache import CachedEncoder
from ferret.tools.engine import ToolEngine
from ferret.tools.retriever import DEFAULT_WEIGHTS, HybridWeights, Mode, RetrieveRequest

# (label, mode, classifier, refiner) rows of the evaluation table.
FIRST_STAGE = [(m.value, m, False, False) for m in Mode]
# Tools, usage records or retrievals per call during evaluation (bounds the refiner's [queries, candidates,
# dim] tensors too), and the deadline of one such RPC.
RPC_CHUNK = 256
RPC_TIMEOUT_S = 600.0
SECOND_STAGE = [
    (f"{m.value}+{label}", m, classifier, refiner)
    for m in Mode
    for label, classifier, refiner in (("mlc", True, False), ("refiner", False, True), ("both", True, True))
]


def add_tools_commands(subparsers: argparse._SubParsersAction) -> None:
    tools = subparsers.add_parser("tools", help="tool retrieval: evaluation, second-stage and QTA training")
    sub = tools.add_subparsers(dest="tools_command", required=True)

    p = sub.add_parser(
        "eval", help="build a catalogue from a dataset's train part and evaluate its test part"
    )
    p.add_argument(
        "data_dir", help="MetaTool's folder or a generic folder (tools.jsonl, train.jsonl, test.jsonl)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument(
        "--address",
        help="evaluate through this running server (HOST:PORT); the dataset's tools and usage are upserted "
        "into its catalogue. Default: an in-process server on a free loopback port",
    )
    p.add_argument("--work-dir", help="the in-process server's data dir (default: a temporary folder)")
    p.add_argument("--second-stages", action="store_true", help="also train and evaluate the MLC and refiner")
    p.add_argument("--cache", help=".npz file that keeps query embeddings between runs")
    p.add_argument(
        "--every",
        type=int,
        default=1,
        help="keep every N-th train and test example (a quicker, deterministic subsample)",
    )
    p.add_argument("--bm25-weight", type=float, default=HybridWeights.bm25, help="hybrid weight of BM25")
    add_threads_option(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "tune", help="score hybrid weight settings on a validation part held out from the train part"
    )
    p.add_argument("data_dir", help="MetaTool's folder or a generic folder")
    p.add_argument("--cache", help=".npz file that keeps query embeddings between runs")
    p.set_defaults(func=cmd_tune)

    for name, helptext in (
        ("train-mlc", "train the multi-label classifier from recorded usage"),
        ("train-refiner", "train the ToolRefiner reranker from recorded usage"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--data-dir", required=True, help="the tools data dir (catalogue + usage)")
        p.add_argument("--epochs", type=int, help="at most this many; training stops early on held-out loss")
        add_threads_option(p)
        p.set_defaults(func=cmd_train_stage)

    p = sub.add_parser("qta-pairs", help="DPO preference pairs from rewrites ranked by the current retriever")
    p.add_argument("--data-dir", required=True, help="the tools data dir whose retriever ranks the rewrites")
    p.add_argument("--rewriter", required=True, help="local causal LM checkpoint")
    p.add_argument("--samples", required=True, help='JSONL of {"query": ..., "tools": [ids]}')
    p.add_argument("--out", required=True, help="JSONL file of pairs to write")
    p.add_argument("--rewrites", type=int, default=2, help="rewrites sampled per query")
    p.set_defaults(func=cmd_qta_pairs)

    p = sub.add_parser("train-qta", help="DPO-train the rewriter on preference pairs (trl)")
    p.add_argument("--rewriter", required=True, help="local causal LM checkpoint to start from")
    p.add_argument("--pairs", required=True, help="JSONL written by `tools qta-pairs`")
    p.add_argument("--out", required=True, help="folder for the aligned checkpoint")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=5e-6)
    p.add_argument("--beta", type=float, default=0.1)
    p.set_defaults(func=cmd_train_qta)


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: the second-stage models are small, and on a shared "
        "2-core machine 2 threads made an MLC step 10x slower than 1)",
    )


def set_torch_threads(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(max(1, args.torch_threads))


def default_encoder(cache: str | None = None) -> Encoder:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ferret.encoders.registry import ModelConfig, load_model

    encoder = load_model(ModelConfig(name="all-MiniLM-L6-v2", family="sentence-transformers"))
    if cache:
        encoder = CachedEncoder(encoder, cache)
    return encoder


def engine_retrieve(engine: ToolEngine, mode: Mode, classifier: bool, rerank: bool) -> ev.Retrieve:
    """The retriever the evaluation loop calls: (queries, k) -> ranked tool ids."""

    def retrieve(queries: list[str], k: int) -> list[list[str]]:
        requests = [
            RetrieveRequest(query=q, k=k, mode=mode, classifier=classifier, rerank=rerank) for q in queries
        ]
        return [
            [hit.tool_id for hit in hits]
            for chunk in _chunks(requests, RPC_CHUNK)
            for hits in engine.retrieve_tools_batch(chunk)
        ]

    return retrieve


def train_stages(engine: ToolEngine | None) -> dict[str, float]:
    """Train the MLC and the refiner on `engine`'s recorded usage; seconds each took."""
    if engine is None:
        raise InvalidArgument(
            "--second-stages trains the stages in the served data dir, which only the in-process server "
            "allows; drop --address, or run `ferret tools train-mlc/train-refiner` by the server's data dir"
        )
    notes: dict[str, float] = {}
    for name, train in (("mlc", engine.train_classifier), ("refiner", engine.train_refiner)):
        start = time.perf_counter()
        notes[f"{name}_epochs"] = len(train())
        notes[f"train_{name}_s"] = time.perf_counter() - start
    return notes


class EvalTarget(Protocol):
    """What the evaluation loop builds and queries: the engine in process, or a server over gRPC."""

    def build(self, dataset: ev.ToolDataset) -> None: ...

    def retriever(self, mode: Mode, classifier: bool, rerank: bool) -> ev.Retrieve: ...

    def train_stages(self) -> dict[str, float]: ...


class EngineTarget:
    def __init__(self, engine: ToolEngine):
        self.engine = engine

    def build(self, dataset: ev.ToolDataset) -> None:
        self.engine.upsert_tools(dataset.tools)
        self.engine.record_usage([(e.query, e.tools) for e in dataset.train])

    def retriever(self, mode: Mode, classifier: bool, rerank: bool) -> ev.Retrieve:
        return engine_retrieve(self.engine, mode, classifier, rerank)

    def train_stages(self) -> dict[str, float]:
        return train_stages(self.engine)


class ServerTarget:
    """Through a server's ToolsService: UpsertTools, RecordUsage and RetrieveToolsBatch, in chunks.

    `local_engine` is the in-process server's engine (to train second stages in place), else None.
    """

    def __init__(self, client: Client, local_engine: ToolEngine | None = None):
        self.client, self.local_engine = client, local_engine

    def build(self, dataset: ev.ToolDataset) -> None:
        for chunk in _chunks(dataset.tools, RPC_CHUNK):
            self.client.upsert_tools(chunk)
        for chunk in _chunks(dataset.train, RPC_CHUNK):
            self.client.record_usage([(e.query, e.tools) for e in chunk])

    def retriever(self, mode: Mode, classifier: bool, rerank: bool) -> ev.Retrieve:
        def retrieve(queries: list[str], k: int) -> list[list[str]]:
            ranked = []
            for chunk in _chunks(queries, RPC_CHUNK):
                requests = [RetrieveRequest(q, k=k, mode=mode, classifier=classifier, rerank=rerank) for q in chunk]
                ranked += [[h.tool_id for h in r.hits] for r in self.client.retrieve_tools_batch(requests)]
            return ranked

        return retrieve

    def train_stages(self) -> dict[str, float]:
        return train_stages(self.local_engine)


def _chunks(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def evaluate_target(
    dataset: ev.ToolDataset, target: EvalTarget, second_stages: bool, bm25_in_hybrid: bool = True
) -> tuple[dict[str, dict[str, dict[str, float]]], dict]:
    """{test set: {row label: metrics}} and timings/training notes."""
    notes: dict[str, float] = {}
    start = time.perf_counter()
    target.build(dataset)
    notes["build_s"] = time.perf_counter() - start
    rows = list(FIRST_STAGE)
    if not bm25_in_hybrid:  # BM25 is then off in hybrid; still report BM25 alone
        rows = [r for r in rows if r[0] != "hybrid"] + [("hybrid(no bm25)", Mode.HYBRID, False, False)]
    if second_stages:
        notes.update(target.train_stages())
        rows += SECOND_STAGE
    results: dict[str, dict[str, dict[str, float]]] = {}
    for test_name, examples in dataset.tests.items():
        results[test_name] = {}
        for label, mode, classifier, rerank in rows:
            results[test_name][label] = ev.evaluate(target.retriever(mode, classifier, rerank), examples)
    return results, notes


def run_eval(
    data_dir: str | Path,
    work_dir: str | Path,
    encoder: Encoder,
    second_stages: bool,
    weights: HybridWeights = DEFAULT_WEIGHTS,
    every: int = 1,
) -> tuple[dict[str, dict[str, dict[str, float]]], dict]:
    """The evaluation in process, straight on a ToolEngine (quick tuning runs; `tools eval` uses gRPC)."""
    dataset = ev.load(data_dir).subsample(every)
    engine = ToolEngine(work_dir, encoder, weights)
    try:
        return evaluate_target(dataset, EngineTarget(engine), second_stages, weights.bm25 != 0)
    finally:
        engine.close()


def run_eval_server(
    data_dir: str | Path,
    address: str | None = None,
    work_dir: str | Path | None = None,
    second_stages: bool = False,
    weights: HybridWeights = DEFAULT_WEIGHTS,
    every: int = 1,
    cache: str | None = None,
) -> tuple[dict[str, dict[str, dict[str, float]]], dict]:
    """The evaluation through the ToolsService of the server at `address`, or of an in-process server on a
    free loopback port over `work_dir` (a temporary folder when None).

    `weights` and `cache` tune the in-process server's engine; a running server keeps its own.
    """
    dataset = ev.load(data_dir).subsample(every)
    if address is not None:
        if second_stages:
            train_stages(None)  # refused before the dataset is written into the running server
        if cache or weights != DEFAULT_WEIGHTS:
            raise InvalidArgument("--cache and --bm25-weight apply to the in-process server; drop --address")
        with Client(address, timeout=RPC_TIMEOUT_S) as client:
            client.wait_ready()
            return evaluate_target(dataset, ServerTarget(client), second_stages)
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            work_dir = stack.enter_context(tempfile.TemporaryDirectory())
        config = parse_config({"server": {"host": "127.0.0.1", "port": 0, "data_dir": str(work_dir)}})
        server = stack.enter_context(ServerThread(config))
        server.wait_ready()
        engine = server.server.state.tools.engine
        engine.retriever.weights = weights
        if cache:
            engine.signals.encoder = CachedEncoder(engine.signals.encoder, cache)
        client = stack.enter_context(Client(server.address, timeout=RPC_TIMEOUT_S))
        results = evaluate_target(dataset, ServerTarget(client, engine), second_stages, weights.bm25 != 0)
        if cache:
            engine.signals.encoder.save()
        return results


# Settings `tools tune` compares (Tool2Vec weight fixed at 1: only the ratios matter).
TUNE_DESCRIPTION = (0.0, 0.1, 0.3)
TUNE_BM25 = (0.0, 0.1, 0.2, 0.4, 0.6, 1.0)


def tune_weights(
    data_dir: str | Path, work_dir: str | Path, encoder: Encoder
) -> list[tuple[HybridWeights, dict[str, float]]]:
    """Hybrid metrics per weight setting on `validation_split(train)`: the catalogue learns from the
    rest of train only, and the test part is never read. Best nDCG@5 first."""
    dataset = ev.load(data_dir)
    fit, held = ev.validation_split(dataset.train)
    engine = ToolEngine(work_dir, encoder)
    try:
        EngineTarget(engine).build(ev.ToolDataset(dataset.tools, fit, {}))
        scored = []
        for description in TUNE_DESCRIPTION:
            for bm25 in TUNE_BM25:
                engine.retriever.weights = HybridWeights(1.0, description, bm25)
                retrieve = engine_retrieve(engine, Mode.HYBRID, False, False)
                scored.append((engine.retriever.weights, ev.evaluate(retrieve, held)))
    finally:
        engine.close()
    return sorted(scored, key=lambda item: -item[1]["ndcg@5"])


def cmd_tune(args: argparse.Namespace) -> int:
    encoder = default_encoder(args.cache)
    with tempfile.TemporaryDirectory() as tmp:
        scored = tune_weights(args.data_dir, tmp, encoder)
    if args.cache:
        encoder.save()
    print("| tool2vec | description | bm25 | recall@1 | recall@5 | ndcg@5 |\n|---|---|---|---|---|---|")
    for w, m in scored:
        print(
            f"| {w.tool2vec} | {w.description} | {w.bm25} | {100 * m['recall@1']:.1f} | "
            f"{100 * m['recall@5']:.1f} | {100 * m['ndcg@5']:.1f} |"
        )
    return 0


def format_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = []
    for test_name, by_row in results.items():
        keys = list(next(iter(by_row.values())))
        lines.append(f"| {test_name} | " + " | ".join(keys) + " |")
        lines.append("|---" * (len(keys) + 1) + "|")
        for label, metrics in by_row.items():
            lines.append(f"| {label} | " + " | ".join(f"{100 * metrics[k]:.1f}" for k in keys) + " |")
        lines.append("")
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    set_torch_threads(args)
    results, notes = run_eval_server(
        args.data_dir,
        address=args.address,
        work_dir=args.work_dir,
        second_stages=args.second_stages,
        weights=HybridWeights(bm25=args.bm25_weight),
        every=args.every,
        cache=args.cache,
    )
    if args.json:
        print(json.dumps(results))
    else:
        print(format_table(results))
        print(" ".join(f"{k}={v:.1f}" for k, v in notes.items()))
    return 0


def cmd_train_stage(args: argparse.Namespace) -> int:
    set_torch_threads(args)
    engine = ToolEngine(args.data_dir, default_encoder())
    options = {} if args.epochs is None else {"epochs": args.epochs}
    train = engine.train_classifier if args.tools_command == "train-mlc" else engine.train_refiner
    losses = train(**options)
    print(
        f"{args.tools_command}: {len(losses)} epochs, loss {losses[0]:.4f} -> {losses[-1]:.4f}, "
        f"saved in {args.data_dir}"
    )
    return 0


def cmd_qta_pairs(args: argparse.Namespace) -> int:
    from ferret.tools.qta import QueryRewriter, preference_pairs, write_pairs

    engine = ToolEngine(args.data_dir, default_encoder())
    samples = ev.load_examples(Path(args.samples))
    rewriter = QueryRewriter(args.rewriter)
    tools = {t.id: t for t in engine.list_tools()}
    pairs = preference_pairs(
        rewriter,
        engine_retrieve(engine, Mode.HYBRID, False, False),
        tools,
        samples,
        rewrites_per_query=args.rewrites,
    )
    write_pairs(pairs, args.out)
    print(f"{len(pairs)} preference pairs from {len(samples)} samples written to {args.out}")
    return 0


def cmd_train_qta(args: argparse.Namespace) -> int:
    from ferret.tools.qta import DPOSettings, read_pairs, train_qta

    metrics = train_qta(
        args.rewriter,
        read_pairs(args.pairs),
        args.out,
        DPOSettings(epochs=args.epochs, learning_rate=args.lr, beta=args.beta),
    )
    print(json.dumps(metrics))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ferret")
    add_tools_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
