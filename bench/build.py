"""Offline build throughput: the local (one-process) build vs the Ray build with N encoder workers.

Both build the same SciFact slice with the same schema (all-MiniLM-L6-v2 dense + BM25) from scratch, in
one run, and the table puts their docs/s side by side with the ratio. On one small machine a ratio near 1
is expected (the workers share its cores, and Ray adds start-up and transfer); the Ray build exists to
scale out across machines and GPUs, not to win on one box.

    HF_HUB_OFFLINE=1 PYTHONPATH=$PWD python bench/build.py --docs 2000 --workers 2 --shards 2
"""

from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import time
from pathlib import Path

SCHEMA = {
    "dense": [{"name": "emb", "encoder": "all-MiniLM-L6-v2"}],
    "sparse": [{"name": "bm25", "encoder": "bm25"}],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000, help="SciFact documents to build from")
    parser.add_argument("--workers", type=int, default=2, help="Ray encoder actors")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--address", help="Ray cluster (default: a local Ray with one CPU per worker)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import ray
    import torch

    from ferret.datasets import dataset_path
    from ferret.distributed.build import build_sharded_collection
    from ferret.encoders.registry import DEFAULT_MODELS, ModelRegistry
    from ferret.indexing.build import build_collection

    folder = dataset_path("beir/scifact")
    if folder is None:
        raise SystemExit("dataset beir/scifact not found (set FERRET_DATASETS)")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as src, corpus.open("w") as out:
            for _, line in zip(range(args.docs), src, strict=False):
                out.write(line)
        registry = ModelRegistry.from_configs(list(DEFAULT_MODELS))
        local = build_collection(corpus, Path(tmp) / "local", "c", SCHEMA, registry,
                                 batch_size=args.batch_size, progress=False)
        del registry
        started = time.perf_counter()
        ray.init(address=args.address, num_cpus=None if args.address else args.workers,
                 include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - started
        distributed = build_sharded_collection(
            corpus, Path(tmp) / "sharded", "c", SCHEMA, DEFAULT_MODELS, shards=args.shards,
            workers=args.workers, batch_size=args.batch_size, progress=False,
        )
        ray.shutdown()
    print(f"{local.added} SciFact documents, MiniLM dense + BM25, batch {args.batch_size}, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}; Ray start-up {startup:.1f} s not counted")
    print(f"{'build':<34} {'docs':>6} {'seconds':>8} {'docs/s':>8} {'vs local':>9}")
    rows = [("local (1 process)", local.added, local.seconds, local.docs_per_second),
            (f"ray ({args.workers} workers, {args.shards} shards)", distributed.added, distributed.seconds,
             distributed.docs_per_second)]
    for name, docs, seconds, rate in rows:
        print(f"{name:<34} {docs:>6} {seconds:>8.1f} {rate:>8.1f} {rate / local.docs_per_second:>8.2f}x")


if __name__ == "__main__":
    main()
