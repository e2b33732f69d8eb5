"""SearchService of a router process in front of a sharded collection.

A router is `ferret serve` with a `[router]` table instead of collections of its own:

    [router]
    shards = ["10.0.0.1:50051", "10.0.0.2:50051"]  # one `ferret serve --data-dir shard-NNN` per shard
    timeout_s = 10                                  # per shard call
    api_key = "secret"                              # what the shards expect (default: none)

Each `Query` runs every sub-search on every shard (one BatchQuery per shard, concurrently), merges the
shards' lists and fuses after the merge (`ferret.indexing.shards`), so the answer equals the unsharded
collection's. A query with BM25 text sub-searches first asks every shard for its TermStatistics and
sends the sums along, so BM25 scores equal the unsharded collection's too. A shard that cannot be
reached makes the query UNAVAILABLE with the shard named, or, when the request sets `allow_partial`,
the answer of the others with the missing shards listed in `unavailable_shards`. Texts are encoded by
the shards, with the encoders they were built with. Writes go to the shard that owns the document
(`shard_of`), not through the router.

Which fields are BM25 the router learns from a shard's GetCollection, once per collection name, and
keeps. So that a stale copy (the collection re-created, or its alias re-pointed, with other fields)
cannot silently change scores, each text sub-search names the encoder the router expects for its field:
a shard whose field differs refuses it, and the router then reloads the schema and, if it changed,
retries the query once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import grpc

from ferret import errors
from ferret.client import Client, query_message
from ferret.errors import FailedPrecondition, FerretError, InvalidArgument, NotFound, Unavailable
from ferret.indexing.bm25 import TermStatistics
from ferret.indexing.collection import Query, QueryResult
from ferret.indexing.schema import CollectionSchema
from ferret.indexing.shards import ShardedQueryResult, ShardedSearch, shard_directory
from ferret.proto import codec
from ferret.proto.ferret.v1 import collections_pb2 as pb
from ferret.proto.ferret.v1 import collections_pb2_grpc as pb_grpc
from ferret.server.collections_service import (
    MAX_BATCH_QUERIES,
    SEARCH_SERVICE,
    query_from_proto,
    query_response,
)
from ferret.server.config import ConfigError, check_keys
from ferret.server.errors import rpc
from ferret.server.state import ServerState

# `ferret serve` runs these service modules instead of the default ones when the config has [router].
ROUTER_SERVICE_MODULES = ["ferret.server.router_service"]
_ERRORS = {cls.code: cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, FerretError)}
# Statuses that mean "this shard did not answer", as opposed to an answer that is an error.
_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
# What shards answer when the router's copy of a schema is stale (and to plain bad requests).
_STALE_SCHEMA = (InvalidArgument, NotFound, FailedPrecondition)
T = TypeVar("T")


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
    check_keys(table, ("shards", "timeout_s", "api_key"), "router")
    shards = table.get("shards")
    if not isinstance(shards, list) or not shards or not all(isinstance(s, str) and s for s in shards):
        raise ConfigError('[router]: shards must be a non-empty list of "host:port" addresses')
    timeout = table.get("timeout_s", 10.0)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"[router]: timeout_s must be a positive number, not {timeout!r}")
    return RouterSettings(tuple(shards), float(timeout), table.get("api_key") or None)


def _shard_error(name: str, exc: grpc.RpcError) -> FerretError:
    """A failed shard call as a Ferret error: Unavailable when the shard did not answer (the merge leaves
    it out or names it), else the shard's own status and message."""
    if exc.code() in _DOWN:
        return Unavailable(f"{exc.code().name}: {exc.details()}")
    return _ERRORS.get(exc.code(), FerretError)(f"shard {name}: {exc.details()}")


class RemoteShard:
    """One shard process seen through its SearchService, for one request's collection and filter."""

    def __init__(self, name: str, client: Client, collection: str, filter_message: pb.Filter | None):
        self.name, self.client, self.collection, self.filter = name, client, collection, filter_message

    def _call(self, method: Callable[..., T], *args: Any) -> T:
        try:
            return method(*args)
        except grpc.RpcError as exc:
            raise _shard_error(self.name, exc) from None

    def query_batch(self, queries: Sequence[Query]) -> list[QueryResult]:
        requests = []
        for q in queries:
            # The filter travels as the caller sent it (the engine's parsed form has no way back to proto).
            request = query_message(self.collection, q.searches, q.fusion, None, q.limit, q.offset,
                                    q.with_text, q.with_metadata)
            if self.filter is not None:
                request.filter.CopyFrom(self.filter)
            requests.append(request)
        return self._call(self.client.batch_query, requests)

    def term_statistics(self, field: str, texts: Sequence[str]) -> TermStatistics:
        return self._call(self.client.term_statistics, self.collection, field, texts)


def _field_encoders(schema: CollectionSchema) -> dict[str, str]:
    return {f.name: f.encoder for f in (*schema.dense, *schema.sparse)}


def _with_expected_encoders(query: Query, schema: CollectionSchema) -> Query:
    """The query with each text sub-search naming the encoder of its field in `schema` (unless the caller
    named one), so that a shard whose field has another encoder or kind refuses it."""
    encoders = _field_encoders(schema)
    searches = [
        replace(s, encoder=encoders[s.field]) if s.text is not None and not s.encoder and s.field in encoders else s
        for s in query.searches
    ]
    return replace(query, searches=searches)


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
        self._schemas: dict[str, CollectionSchema] = {}  # collection name or alias as asked -> its schema

    def _sharded(self, collection: str, filter_message: pb.Filter | None,
                 schema: CollectionSchema | None) -> ShardedSearch:
        shards = {name: RemoteShard(name, client, collection, filter_message) for name, client in self.clients.items()}
        bm25_fields = schema.bm25_fields if schema is not None else frozenset()
        return ShardedSearch(shards, self._executor, bm25_fields=bm25_fields)

    def _load_schema(self, collection: str) -> CollectionSchema:
        """The collection's schema from the first shard that answers (every shard has the same), kept."""
        down = []
        for name, client in self.clients.items():
            try:
                schema = client.get_collection(collection).schema
            except grpc.RpcError as exc:
                error = _shard_error(name, exc)
                if not isinstance(error, Unavailable):
                    raise error from None
                down.append(f"shard {name}: {error}")
                continue
            self._schemas[collection] = schema
            return schema
        raise Unavailable(f"no shard answered for the schema of collection {collection!r} ({'; '.join(down)}); retry")

    def _search(self, request: pb.QueryRequest, query: Query, schema: CollectionSchema | None) -> ShardedQueryResult:
        filter_message = request.filter if request.HasField("filter") else None
        if schema is not None:
            query = _with_expected_encoders(query, schema)
        return self._sharded(request.collection, filter_message, schema).query(query, request.allow_partial)

    def query(self, request: pb.QueryRequest) -> pb.QueryResponse:
        started = time.perf_counter()
        query = query_from_proto(request)
        # Only text sub-searches can be BM25 ones: a query of vectors needs no schema and no statistics.
        text_fields = {s.field for s in query.searches if s.text is not None}
        schema = self._schemas.get(request.collection) if text_fields else None
        if text_fields and (schema is None or not text_fields <= _field_encoders(schema).keys()):
            schema = self._load_schema(request.collection)
        try:
            result = self._search(request, query, schema)
        except _STALE_SCHEMA:
            if schema is None or self._load_schema(request.collection) == schema:
                raise
            result = self._search(request, query, self._schemas[request.collection])
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

    def term_statistics(self, request: pb.TermStatisticsRequest) -> pb.TermStatisticsResponse:
        """The sum of every shard's statistics (UNAVAILABLE naming the shards that did not answer)."""
        statistics = self._sharded(request.collection, None, None).term_statistics(request.field, request.texts)
        return pb.TermStatisticsResponse(collection=request.collection,
                                         statistics=codec.statistics_to_proto(statistics))

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

    @rpc
    async def TermStatistics(self, request: pb.TermStatisticsRequest, context) -> pb.TermStatisticsResponse:
        return await self.state.in_thread(self.router.term_statistics, request)


def register(server: grpc.aio.Server, state: ServerState) -> list[str]:
    settings = router_settings(state.config.raw)
    if settings is None:
        raise ConfigError("the router needs a [router] table with the shard addresses")
    pb_grpc.add_SearchServiceServicer_to_server(RouterSearchServicer(state, settings), server)
    return [SEARCH_SERVICE]
