"""The `ferret` command line.

Subcommands plug in by one line in `COMMANDS`: "module:function", where the function takes the argparse
subparsers object, adds its parser(s) and sets `func` (called with the parsed args, returns the exit code).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys

COMMANDS: list[str] = [
    "ferret.cli:add_serve",
    "ferret.cli:add_embed",
    "ferret.index_cli:add_index",
    "ferret.tools.cli:add_tools_commands",
    "ferret.health_cli:add_health",
    "ferret.eval_cli:add_eval",
]


def add_serve(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the gRPC server")
    p.add_argument("--config", help="TOML config file (default: embedded models on 127.0.0.1:50051)")
    p.add_argument("--host", help="override [server] host")
    p.add_argument("--port", type=int, help="override [server] port (0 = any free port)")
    p.add_argument("--data-dir", help="override [server] data_dir (collections, e.g. from `ferret index build`)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process (default); ray: deploy the [router] on Ray Serve (replicas, autoscaling)")
    p.add_argument("--address", help="Ray cluster address (--engine ray; default: start a local Ray)")
    p.set_defaults(func=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ferret.encoders.base import ModelLoadError
    from ferret.errors import FerretError
    from ferret.server.app import SERVICE_MODULES, serve
    from ferret.server.config import ConfigError, load_config
    from ferret.server.logs import configure_logging
    from ferret.server.router_service import ROUTER_SERVICE_MODULES, router_settings

    try:
        config = load_config(args.config)
        # A [router] table makes this process the router of a sharded collection (no collections of its own).
        modules = ROUTER_SERVICE_MODULES if router_settings(config.raw) else SERVICE_MODULES
    except (ConfigError, ModelLoadError) as exc:
        print(f"ferret serve: {exc}", file=sys.stderr)
        return 2
    overrides = {
        k: v for k, v in (("host", args.host), ("port", args.port), ("data_dir", args.data_dir)) if v is not None
    }
    # The raw document too: the Ray Serve ingress tells a [server] host that was asked for from the default.
    raw = {**config.raw, "server": {**config.raw.get("server", {}), **overrides}}
    config = replace(config, server=replace(config.server, **overrides), raw=raw)
    if args.engine == "ray":
        return _serve_on_ray(config, args.address)
    configure_logging(config.server.log_level, config.server.json_logs)
    try:
        asyncio.run(serve(config, modules))
    except (ConfigError, ModelLoadError, FerretError) as exc:  # FerretError: e.g. the data directory is in use
        print(f"ferret serve: {exc}", file=sys.stderr)
        return 1
    return 0


def _serve_on_ray(config, address: str | None) -> int:
    """Deploy the router on Ray Serve, print where it answers, and keep it until interrupted (Ctrl-C, SIGTERM)."""
    import signal
    import time

    from ferret.errors import FerretError
    from ferret.server.config import ConfigError

    try:
        from ferret.distributed.serve import HEALTHZ, deploy_router, undeploy_router

        deployment = deploy_router(config, address)
    except (ConfigError, FerretError, ConnectionError) as exc:  # ConnectionError: Ray found no cluster there
        print(f"ferret serve: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    print(f"ferret serve: router on Ray Serve, application {deployment.app_name!r}, replicas {deployment.replicas}; "
          f"gRPC ingress {', '.join(deployment.addresses)} (health: {HEALTHZ})", flush=True)
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell ignores it in background jobs
        signal.signal(signum, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        undeploy_router(deployment.app_name, local_ray=address is None)
    return 0


def add_embed(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("embed", help="embed texts through a running server")
    p.add_argument("texts", nargs="*", help="texts to embed (default: one per line of stdin)")
    p.add_argument("--address", default="127.0.0.1:50051", help="server HOST:PORT")
    p.add_argument("--model", default="", help="model name (default: the server's first dense model)")
    p.add_argument("--side", choices=["query", "document"])
    p.add_argument("--dimensions", type=int, help="Matryoshka output size")
    p.add_argument("--no-normalize", action="store_true", help="return vectors without L2 normalisation")
    p.add_argument("--api-key", help="API key, when the server requires one")
    p.add_argument("--json", action="store_true", help="print one JSON object {model, vectors}")
    p.set_defaults(func=embed_command)


def embed_command(args: argparse.Namespace) -> int:
    import grpc

    from ferret.client import Client

    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    with Client(args.address, api_key=args.api_key) as client:
        try:
            result = client.embed(texts, model=args.model, side=args.side, dimensions=args.dimensions,
                                  normalize=not args.no_normalize)
        except grpc.RpcError as exc:
            print(f"ferret embed: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps({"model": result.model, "vectors": result.vectors.tolist()}))
    else:
        for text, vector in zip(texts, result.vectors, strict=True):
            head = " ".join(f"{x:+.4f}" for x in vector[:6])
            print(f"{result.model} dim={vector.shape[0]} [{head} ...]  {text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferret", description="Ferret retrieval and embedding server")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for target in COMMANDS:
        module, func = target.split(":")
        getattr(importlib.import_module(module), func)(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
