"""`ferret health`: exit 0 when a server's gRPC health service reports SERVING (container health checks)."""

from __future__ import annotations

import argparse
import sys


def add_health(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("health", help="check a server through grpc.health.v1 (exit 0 when SERVING)")
    p.add_argument("--address", default="127.0.0.1:50051", help="server HOST:PORT")
    p.add_argument("--service", default="", help="service name ('' = the whole server)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds")
    p.set_defaults(func=health_command)


def health_command(args: argparse.Namespace) -> int:
    import grpc

    from ferret.client import Client

    try:
        with Client(args.address, timeout=args.timeout) as client:
            status = client.health(args.service, timeout=args.timeout)
    except grpc.RpcError as exc:
        print(f"ferret health: {args.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print(status)
    return 0 if status == "SERVING" else 1
