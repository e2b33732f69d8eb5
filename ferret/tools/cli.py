"""`ferret tools ...` commands: eval, train-mlc, train-refiner, qta-pairs, train-qta.

The main `ferret` CLI calls `add_tools_commands(subparsers)`; each command stores its handler in
`args.func`. `tools eval` runs in-process for now: `engine_retrieve` is the one place to swap for a
gRPC client's RetrieveToolsBatch once the service exists.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ferret.encoders.base import Encoder
from ferret.tools import evaluate as ev
from ferret.tools.engine import ToolEngine
from ferret.tools.retriever import DEFAULT_WEIGHTS, HybridWeights, Mode, RetrieveRequest

# (label, mode, classifier, refiner) rows of the evaluation table.
FIRST_STAGE = [(m.value, m, False, False) for m in Mode]
SECOND_STAGE = [
    (f"{m.value}+{label}", m, classifier, refiner)
    for m in Mode
    for label, classifier, refiner in (("mlc", True, False), ("refiner", False, True), ("both", True, True))
]
# Queries per RetrieveToolsBatch call in evaluation: bounds the refiner's [queries, candidates, dim] tensors.
EVAL_BATCH = 256


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
    p.add_argument("--work-dir", help="catalogue data dir to build (default: a temporary folder)")
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
        from ferret.tools.embedding_cache import CachedEncoder

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
            for start in range(0, len(requests), EVAL_BATCH)
            for hits in engine.retrieve_tools_batch(requests[start : start + EVAL_BATCH])
        ]

    return retrieve


def build_engine(
    dataset: ev.ToolDataset, work_dir: str | Path, encoder: Encoder, weights: HybridWeights = DEFAULT_WEIGHTS
) -> ToolEngine:
    engine = ToolEngine(work_dir, encoder, weights)
    engine.upsert_tools(dataset.tools)
    engine.record_usage([(e.query, e.tools) for e in dataset.train])
    return engine


def run_eval(
    data_dir: str | Path,
    work_dir: str | Path,
    encoder: Encoder,
    second_stages: bool,
    weights: HybridWeights = DEFAULT_WEIGHTS,
    every: int = 1,
) -> tuple[dict[str, dict[str, dict[str, float]]], dict]:
    """{test set: {row label: metrics}} and timings/training notes."""
    dataset = ev.load(data_dir).subsample(every)
    notes: dict[str, float] = {}
    start = time.perf_counter()
    engine = build_engine(dataset, work_dir, encoder, weights)
    notes["build_s"] = time.perf_counter() - start
    rows = list(FIRST_STAGE)
    if weights.bm25 == 0:  # BM25 is then off in hybrid; still report BM25 alone
        rows = [r for r in rows if r[0] != "hybrid"] + [("hybrid(no bm25)", Mode.HYBRID, False, False)]
    if second_stages:
        start = time.perf_counter()
        notes["mlc_epochs"] = len(engine.train_classifier())
        notes["train_mlc_s"] = time.perf_counter() - start
        start = time.perf_counter()
        notes["refiner_epochs"] = len(engine.train_refiner())
        notes["train_refiner_s"] = time.perf_counter() - start
        rows += SECOND_STAGE
    results: dict[str, dict[str, dict[str, float]]] = {}
    for test_name, examples in dataset.tests.items():
        results[test_name] = {}
        for label, mode, classifier, rerank in rows:
            retrieve = engine_retrieve(engine, mode, classifier, rerank)
            results[test_name][label] = ev.evaluate(retrieve, examples)
    engine.close()
    return results, notes


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
    engine = build_engine(ev.ToolDataset(dataset.tools, fit, {}), work_dir, encoder)
    scored = []
    for description in TUNE_DESCRIPTION:
        for bm25 in TUNE_BM25:
            engine.retriever.weights = HybridWeights(1.0, description, bm25)
            retrieve = engine_retrieve(engine, Mode.HYBRID, False, False)
            scored.append((engine.retriever.weights, ev.evaluate(retrieve, held)))
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
    encoder = default_encoder(args.cache)
    weights = HybridWeights(bm25=args.bm25_weight)
    with tempfile.TemporaryDirectory() as tmp:
        results, notes = run_eval(
            args.data_dir, args.work_dir or tmp, encoder, args.second_stages, weights, args.every
        )
    if args.cache:
        encoder.save()
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
