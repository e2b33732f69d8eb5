"""`ferret index build`: build a collection offline into a data directory that `ferret serve` opens as is.

    ferret index build corpus.jsonl.gz --data-dir data --collection scifact \\
        --dense emb=all-MiniLM-L6-v2 --bm25 text --index HNSW32

Re-running the same command after an interruption resumes after the last committed batch.
"""

from __future__ import annotations

import argparse
import sys

from ferret.errors import FerretError, InvalidArgument


def add_index(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("index", help="offline collection builds")
    commands = p.add_subparsers(dest="index_command", required=True)
    build = commands.add_parser("build", help="build (or resume building) a collection from a corpus file")
    build.add_argument("corpus", help="BEIR corpus.jsonl(.gz), plain JSONL(.gz) or Parquet")
    build.add_argument("--data-dir", required=True, help="data directory (`ferret serve --data-dir` serves it)")
    build.add_argument("--collection", required=True, help="collection name")
    build.add_argument("--dense", action="append", default=[], metavar="FIELD=ENCODER",
                       help="a dense field computed by a dense model (repeatable)")
    build.add_argument("--bm25", action="append", default=[], metavar="FIELD", help="a BM25 field (repeatable)")
    build.add_argument("--sparse", action="append", default=[], metavar="FIELD=ENCODER",
                       help="a learned sparse field computed by a sparse model (repeatable)")
    build.add_argument("--index", default="Flat", metavar="FACTORY",
                       help="FAISS factory string of the dense fields (default Flat), e.g. HNSW32")
    build.add_argument("--metric", default="cosine", choices=["cosine", "ip", "l2"], help="dense metric")
    build.add_argument("--config", help="TOML config naming the models (default: the embedded models)")
    build.add_argument("--batch-size", type=int, default=256, help="documents per committed batch")
    build.add_argument("--limit", type=int, help="stop after this many corpus records")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local: one process (default); ray: encoder actors on a Ray cluster, sharded output")
    build.add_argument("--address", help="Ray cluster address (--engine ray; default: start a local Ray)")
    build.add_argument("--shards", type=int, default=1, help="shards of the output (--engine ray)")
    build.add_argument("--workers", type=int, default=2, help="encoder actors (--engine ray)")
    build.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per encoder actor (--engine ray)")
    build.set_defaults(func=build_command)


def _pairs(values: list[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        field, sep, encoder = value.partition("=")
        if not sep or not field or not encoder:
            raise InvalidArgument(f"{option} takes FIELD=ENCODER, got {value!r}")
        pairs.append((field, encoder))
    return pairs


def build_schema(args: argparse.Namespace) -> dict:
    """The collection schema the options describe."""
    dense = [{"name": f, "encoder": e, "metric": args.metric, "factory": args.index}
             for f, e in _pairs(args.dense, "--dense")]
    sparse = [{"name": f, "encoder": "bm25"} for f in args.bm25]
    sparse += [{"name": f, "encoder": e} for f, e in _pairs(args.sparse, "--sparse")]
    if not dense and not sparse:
        raise InvalidArgument("give at least one field: --dense FIELD=ENCODER, --bm25 FIELD or --sparse FIELD=ENCODER")
    return {"dense": dense, "sparse": sparse}


def build_command(args: argparse.Namespace) -> int:
    from ferret.encoders.base import ModelLoadError
    from ferret.encoders.registry import ModelRegistry
    from ferret.indexing.build import build_collection
    from ferret.server.config import ConfigError, load_config

    try:
        schema = build_schema(args)
        needed = {f["encoder"] for f in (*schema["dense"], *schema["sparse"])} - {"bm25"}
        configs = [m for m in load_config(args.config).models if m.name in needed]
        missing = needed - {m.name for m in configs}
        if missing:
            raise InvalidArgument(f"encoders {sorted(missing)} are not configured; name them in --config [models.NAME]")
        if args.engine == "ray":
            return _ray_build(args, schema, configs)
        report = build_collection(args.corpus, args.data_dir, args.collection, schema,
                                  ModelRegistry.from_configs(configs), batch_size=args.batch_size,
                                  limit=args.limit, progress=not args.quiet)
    except (FerretError, ConfigError, ModelLoadError) as exc:
        print(f"ferret index build: {exc}", file=sys.stderr)
        return 1
    print(f"collection {report.collection!r}: {report.documents} documents, version {report.version}; "
          f"{report.added} added this run ({report.docs_per_second:.0f} docs/s), "
          f"{report.resumed_from} resumed from a previous run")
    return 0


def _ray_build(args: argparse.Namespace, schema: dict, configs: list) -> int:
    from ferret.distributed.build import build_sharded_collection

    if args.limit is not None:
        raise InvalidArgument("--limit is not supported with --engine ray; cut the corpus file instead")
    report = build_sharded_collection(
        args.corpus, args.data_dir, args.collection, schema, configs, shards=args.shards, workers=args.workers,
        gpus_per_worker=args.gpus_per_worker, batch_size=args.batch_size, address=args.address,
        progress=not args.quiet,
    )
    print(f"collection {report.collection!r}: {report.documents} documents in {report.shards} shards under "
          f"{args.data_dir} (shard-NNN/ data directories); {report.added} added this run "
          f"({report.docs_per_second:.0f} docs/s)")
    return 0
