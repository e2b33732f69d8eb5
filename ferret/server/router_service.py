"""SearchService of a router process in front of a sharded collection.

A router is `ferret serve` with a `[router]` table instead of collections of its own:

    [router]
    shards = ["10.0.0.1:50051", "10.0.0.2:50051"]  # one `ferret serve --data-dir shard-NNN` per shard
    timeout_s = 10                                  # per shard call
    api_key = "secret"                              # what the shards expect (default: none)

Each `Query` runs every sub-search on every shard (one BatchQuery per shard, concurrently), merges the
shards' lists and fuses after the merge (`ferret.indexing.shards`), so the answer equals the unsharded
collection's (BM25: see that module). A shard that cannot be reached makes the query UNAVAILABLE with
the shard named, or, when the request sets `allow_partial`, the answer of the others with the missing
shards listed in `unavailable_shards`. Texts are encoded by the shards, with the encoders they were
built with. Writes go to the shard that owns the document (`shard_of`), not through the router.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc

from ferret import errors
from ferret.client import Client, query_message
from ferret.errors import FerretError, InvalidArgument, Unavailable
from ferret.indexing.collection import Query, QueryResult
from ferret.indexing.shards import ShardedSearch, shard_directory
from ferret.proto.ferret.v1 import collections_pb2 as pb
from ferret.proto.ferret.v1 import collections_pb2_grpc as pb_grpc
from ferret.server.collections_service import (
    MAX_BATCH_QUERIES,
    SEARCH_SERVICE,
    query_from_proto,
    query_response,
)
from ferret.server.config import ConfigError
from ferret.server.errors import rpc
from ferret.server.state import ServerState

# `ferret serve` runs these service modules instead of the default ones when the config has [router].
ROUTER_SERVICE_MODULES = ["ferret.server.router_service"]
_ERRORS = {cls.code: cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, FerretError)}
# Statuses that mean "this shard did not answer", as opposed to an answer that is an error.
_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


@dataclass(frozen=True)
class RouterSettings:
    shards: tuple[str, ...]
    timeout_s: float = 10.0
    api_key: str | None = None


def router_settings(raw: Mapping[str, Any]) -> RouterSettings | None:
    """The [router] table of a parsed config, validated; None when there is none."""
    table = raw.get("router")
    if table is None:
        return None
    unknown = set(table) - {"shards", "timeout_s", "api_key"}
    if unknown:
        raise ConfigError(f"[router]: unknown keys {sorted(unknown)}; known keys: api_key, shards, timeout_s")
    shards = table.get("shards")
    if not isinstance(shards, list) or not shards or not all(isinstance(s, str) and s for s in shards):
        raise ConfigError('[router]: shards must be a non-empty list of "host:port" addresses')
    timeout = table.get("timeout_s", 10.0)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"[router]: timeout_s must be a positive number, not {timeout!r}")
    return RouterSettings(tuple(shards), float(timeout), table.get("api_key") or None)


class RemoteShard:
    """One shard process seen through its SearchService, for one request's collection and filter."""

    def __init__(self, name: str, client: Client, collection: str, filter_message: pb.Filter | None):
        self.name, self.client, self.collection, self.filter = name, client, collection, filter_message

    def query_batch(self, queries: Sequence[Query]) -> list[QueryResult]:
        requests = []
        for q in queries:
            # The filter travels as the caller sent it (the engine's parsed form has no way back to proto).
            request = query_message(self.collection, q.searches, q.fusion, None, q.limit, q.offset,
                                    q.with_text, q.with_metadata)
            if self.filter is not None:
                request.filter.CopyFrom(self.filter)
            requests.append(request)
        try:
            return self.client.batch_query(requests)
        except grpc.RpcError as exc:
            if exc.code() in _DOWN:
                raise Unavailable(f"{exc.code().name}: {exc.details()}") from None
            raise _ERRORS.get(exc.code(), FerretError)(f"shard {self.name}: {exc.details()}") from None


class Router:
    """The router's work, independent of the gRPC server that hosts it (so that another host, such as a
    Ray Serve replica, can reuse it)."""

    def __init__(self, settings: RouterSettings):
        self.clients = {
            f"{shard_directory(i)} ({address})": Client(address, api_key=settings.api_key, timeout=settings.timeout_s)
            for i, address in enumerate(settings.shards)
        }
        self._executor = ThreadPoolExecutor(max_workers=min(32, 2 * len(self.clients)),
                                            thread_name_prefix="ferret-router")

    def query(self, request: pb.QueryRequest) -> pb.QueryResponse:
        started = time.perf_counter()
        filter_message = request.filter if request.HasField("filter") else None
        shards = {name: RemoteShard(name, client, request.collection, filter_message)
                  for name, client in self.clients.items()}
        result = ShardedSearch(shards, self._executor).query(query_from_proto(request), request.allow_partial)
        response = query_response(request.collection, result, started)
        response.unavailable_shards.extend(result.unavailable_shards)
        return response

    def batch_query(self, request: pb.BatchQueryRequest) -> pb.BatchQueryResponse:
        """Queries in order; the first failing one fails the batch, its index named (as SearchService)."""
        if not 1 <= len(request.queries) <= MAX_BATCH_QUERIES:
            raise InvalidArgument(f"a batch needs 1..{MAX_BATCH_QUERIES} queries, got {len(request.queries)}")
        results = []
        for position, query in enumerate(request.queries):
            try:
                results.append(self.query(query))
            except FerretError as exc:
                exc.args = (f"query {position}: {exc}", *exc.args[1:])
                raise
        return pb.BatchQueryResponse(results=results)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self._executor.shutdown(wait=False)


class RouterSearchServicer(pb_grpc.SearchServiceServicer):
    def __init__(self, state: ServerState, settings: RouterSettings):
        self.state = state
        self.router = Router(settings)

    @rpc
    async def Query(self, request: pb.QueryRequest, context) -> pb.QueryResponse:
        return await self.state.in_thread(self.router.query, request)

    @rpc
    async def BatchQuery(self, request: pb.BatchQueryRequest, context) -> pb.BatchQueryResponse:
        return await self.state.in_thread(self.router.batch_query, request)


def register(server: grpc.aio.Server, state: ServerState) -> list[str]:
    settings = router_settings(state.config.raw)
    if settings is None:
        raise ConfigError("the router needs a [router] table with the shard addresses")
    pb_grpc.add_SearchServiceServicer_to_server(RouterSearchServicer(state, settings), server)
    return [SEARCH_SERVICE]
