"""CollectionsService and SearchService: the collection engine (`ferret.indexing.collection`) over gRPC.

A thin layer: requests are decoded with `ferret.proto.codec`, the engine validates and does the work in
the CPU worker threads, and its errors carry their statuses (unknown collection/field NOT_FOUND, bad
vectors/filters/limits INVALID_ARGUMENT, encoder mismatch FAILED_PRECONDITION, corrupt snapshot
DATA_LOSS). Upsert returns only after the store transaction is committed and fsynced.
"""

from __future__ import annotations

import time

import grpc

from ferret.errors import InvalidArgument
from ferret.indexing.collection import (
    MAX_LIMIT,
    MAX_SUBSEARCHES,
    Collection,
    CollectionManager,
    Query,
    QueryResult,
)
from ferret.indexing.fields import SubSearch
from ferret.indexing.store import MAX_BATCH, Document, StoredDocument
from ferret.proto import codec
from ferret.proto.ferret.v1 import collections_pb2 as pb
from ferret.proto.ferret.v1 import collections_pb2_grpc as pb_grpc
from ferret.server.compress_service import compressed_message
from ferret.server.errors import rpc
from ferret.server.state import ServerState
from ferret.tensors import WireDtype, wire_dtype

COLLECTIONS_SERVICE = pb.DESCRIPTOR.services_by_name["CollectionsService"].full_name
SEARCH_SERVICE = pb.DESCRIPTOR.services_by_name["SearchService"].full_name
MAX_BATCH_QUERIES = 256


def _collection_info(manager: CollectionManager, collection: Collection) -> pb.CollectionInfo:
    aliases = sorted(a for a, target in manager.aliases().items() if target == collection.name)
    return pb.CollectionInfo(
        name=collection.name,
        schema=codec.schema_to_proto(collection.schema),
        version=collection.version,
        count=collection.count(),
        aliases=aliases,
    )


def _document(message: pb.Document) -> Document:
    where = f"document {message.id!r}"
    vectors = {name: codec.decode_dense(v, f"{where} field {name!r}") for name, v in message.dense.items()}
    for name, v in message.sparse.items():
        if name in vectors:
            raise InvalidArgument(f"{where}: field {name!r} is given both a dense and a sparse vector")
        vectors[name] = codec.decode_sparse(v, f"{where} field {name!r}")
    return Document(message.id, message.text, codec.struct_to_dict(message.metadata), vectors)


def _document_message(doc: StoredDocument) -> pb.Document:
    message = pb.Document(id=doc.id, text=doc.text, metadata=codec.dict_to_struct(doc.metadata))
    for name, vector in doc.vectors.items():
        if codec.is_sparse(vector):
            message.sparse[name].CopyFrom(codec.encode_sparse(vector))
        else:
            message.dense[name].CopyFrom(codec.encode_dense(vector))
    return message


def _sub_search(message: pb.SubSearch, position: int) -> SubSearch:
    what = f"sub-search {position} ({message.field!r})"
    kind = message.WhichOneof("input")
    if kind == "vector":
        vector = codec.decode_dense(message.vector, what)
    elif kind == "sparse_vector":
        vector = codec.decode_sparse(message.sparse_vector, what)
    else:
        vector = None
    statistics = None
    if message.HasField("statistics"):
        statistics = codec.statistics_from_proto(message.statistics, what)
    return SubSearch(
        field=message.field,
        text=message.text if kind == "text" else None,
        vector=vector,
        limit=message.limit if message.HasField("limit") else codec.DEFAULT_SEARCH_LIMIT,
        weight=message.weight if message.HasField("weight") else 1.0,
        name=message.name or None,
        encoder=message.encoder or None,
        exact=message.exact,
        statistics=statistics,
    )


def query_from_proto(message: pb.QueryRequest) -> Query:
    """The engine query of a QueryRequest (sub-search vectors decoded, fusion and filter parsed)."""
    if len(message.searches) > MAX_SUBSEARCHES:
        raise InvalidArgument(f"a query takes at most {MAX_SUBSEARCHES} sub-searches, got {len(message.searches)}")
    if message.limit > MAX_LIMIT or message.offset > MAX_LIMIT:
        raise InvalidArgument(f"limit and offset must be at most {MAX_LIMIT}")
    return Query(
        searches=[_sub_search(s, i) for i, s in enumerate(message.searches)],
        fusion=codec.fusion_from_proto(message.fusion),
        filter=codec.filter_from_proto(message.filter),
        limit=message.limit if message.HasField("limit") else codec.DEFAULT_QUERY_LIMIT,
        offset=message.offset,
        with_text=message.with_text,
        with_metadata=message.with_metadata,
        compressed_for=message.compressed_for or None,
    )


class CollectionsServicer(pb_grpc.CollectionsServiceServicer):
    def __init__(self, state: ServerState):
        self.state = state

    def _collection(self, name: str) -> Collection:
        return self.state.collection_manager().get(name)

    @rpc
    async def CreateCollection(self, request: pb.CreateCollectionRequest, context) -> pb.CollectionInfo:
        manager = self.state.collection_manager()
        schema = codec.schema_from_proto(request.schema)
        collection = await self.state.in_thread(manager.create, request.name, schema)
        return _collection_info(manager, collection)

    @rpc
    async def GetCollection(self, request: pb.GetCollectionRequest, context) -> pb.CollectionInfo:
        manager = self.state.collection_manager()
        return await self.state.in_thread(_collection_info, manager, manager.get(request.name))

    @rpc
    async def ListCollections(self, request: pb.ListCollectionsRequest, context) -> pb.ListCollectionsResponse:
        manager = self.state.collection_manager()

        def infos() -> list[pb.CollectionInfo]:
            return [_collection_info(manager, manager.get(name)) for name in manager.list()]

        return pb.ListCollectionsResponse(collections=await self.state.in_thread(infos))

    @rpc
    async def DropCollection(self, request: pb.DropCollectionRequest, context) -> pb.DropCollectionResponse:
        manager = self.state.collection_manager()
        await self.state.in_thread(manager.drop, request.name)
        return pb.DropCollectionResponse(collection=request.name)

    @rpc
    async def UpdateAliases(self, request: pb.UpdateAliasesRequest, context) -> pb.UpdateAliasesResponse:
        set_aliases: dict[str, str] = {}
        delete_aliases: list[str] = []
        for op in request.operations:
            kind = op.WhichOneof("op")
            alias = op.create.alias if kind == "create" else op.delete.alias
            if alias in set_aliases or alias in delete_aliases:
                raise InvalidArgument(f"alias {alias!r} appears in more than one operation of the request")
            if kind == "create":
                set_aliases[alias] = op.create.collection
            elif kind == "delete":
                delete_aliases.append(alias)
            else:
                raise InvalidArgument("each alias operation needs create or delete")
        if not set_aliases and not delete_aliases:
            raise InvalidArgument("UpdateAliases needs at least one operation")
        manager = self.state.collection_manager()
        await self.state.in_thread(manager.update_aliases, set_aliases, delete_aliases)
        return pb.UpdateAliasesResponse()

    @rpc
    async def ListAliases(self, request: pb.ListAliasesRequest, context) -> pb.ListAliasesResponse:
        aliases = self.state.collection_manager().aliases()
        return pb.ListAliasesResponse(aliases=[pb.Alias(alias=a, collection=c) for a, c in sorted(aliases.items())])

    @rpc
    async def Upsert(self, request: pb.UpsertRequest, context) -> pb.WriteResponse:
        collection = self._collection(request.collection)
        if len(request.documents) > MAX_BATCH:
            raise InvalidArgument(f"an upsert takes at most {MAX_BATCH} documents, got {len(request.documents)}")
        documents = [_document(d) for d in request.documents]
        result = await self.state.in_thread(collection.upsert, documents)
        return pb.WriteResponse(collection=collection.name, version=result.version, count=len(documents))

    @rpc
    async def Delete(self, request: pb.DeleteRequest, context) -> pb.WriteResponse:
        collection = self._collection(request.collection)
        if not request.ids:
            raise InvalidArgument("a delete needs at least one id")
        result = await self.state.in_thread(collection.delete, list(request.ids))
        return pb.WriteResponse(
            collection=collection.name, version=result.version, count=len(result.replaced_row_ids)
        )

    @rpc
    async def Get(self, request: pb.GetRequest, context) -> pb.GetResponse:
        collection = self._collection(request.collection)
        if len(request.ids) > MAX_BATCH:
            raise InvalidArgument(f"a get takes at most {MAX_BATCH} ids, got {len(request.ids)}")
        version = collection.version
        found = await self.state.in_thread(collection.get, list(request.ids), request.with_vectors)
        present = {d.id for d in found}
        return pb.GetResponse(
            collection=collection.name,
            version=version,
            documents=[_document_message(d) for d in found],
            missing_ids=[i for i in request.ids if i not in present],
        )

    @rpc
    async def Count(self, request: pb.CountRequest, context) -> pb.CountResponse:
        collection = self._collection(request.collection)
        version = collection.version
        count = await self.state.in_thread(collection.count, codec.filter_from_proto(request.filter))
        return pb.CountResponse(collection=collection.name, version=version, count=count)


def _query_response(collection: Collection, request: pb.QueryRequest) -> pb.QueryResponse:
    started = time.perf_counter()
    dtype = wire_dtype(request.compressed_dtype)
    result = collection.query(query_from_proto(request))
    response = query_response(collection.name, result, started, dtype)
    compression = collection.schema.compression
    if request.compressed_for and compression:
        response.compressed_for = request.compressed_for
        response.pooling_factor = compression.pooling_factor
    return response


def query_response(
    collection: str, result: QueryResult, started: float, dtype: WireDtype = WireDtype.FLOAT32
) -> pb.QueryResponse:
    """The QueryResponse of an engine result; `started` is the perf_counter() when the query arrived, `dtype`
    the wire dtype of compressed hits."""
    hits = [
        pb.Hit(
            id=h.id,
            score=h.score,
            sources=[pb.SourceScore(source=name, score=s.score, rank=s.rank) for name, s in h.sources.items()],
            text=h.text or "",
            metadata=codec.dict_to_struct(h.metadata) if h.metadata is not None else None,
            version=h.version,
            compressed=compressed_message(h.compressed, dtype) if h.compressed is not None else None,
        )
        for h in result.hits
    ]
    return pb.QueryResponse(
        collection=collection,
        version=result.version,
        hits=hits,
        time_ms=(time.perf_counter() - started) * 1000,
    )


class SearchServicer(pb_grpc.SearchServiceServicer):
    def __init__(self, state: ServerState):
        self.state = state

    @rpc
    async def Query(self, request: pb.QueryRequest, context) -> pb.QueryResponse:
        collection = self.state.collection_manager().get(request.collection)
        return await self.state.in_thread(_query_response, collection, request)

    @rpc
    async def BatchQuery(self, request: pb.BatchQueryRequest, context) -> pb.BatchQueryResponse:
        if not 1 <= len(request.queries) <= MAX_BATCH_QUERIES:
            raise InvalidArgument(f"a batch needs 1..{MAX_BATCH_QUERIES} queries, got {len(request.queries)}")
        manager = self.state.collection_manager()

        def run() -> list[pb.QueryResponse]:
            results = []
            for position, query in enumerate(request.queries):
                try:
                    results.append(_query_response(manager.get(query.collection), query))
                except Exception as exc:
                    exc.args = (f"query {position}: {exc}", *exc.args[1:])
                    raise
            return results

        return pb.BatchQueryResponse(results=await self.state.in_thread(run))

    @rpc
    async def TermStatistics(self, request: pb.TermStatisticsRequest, context) -> pb.TermStatisticsResponse:
        collection = self.state.collection_manager().get(request.collection)
        statistics = await self.state.in_thread(collection.term_statistics, request.field, list(request.texts))
        return pb.TermStatisticsResponse(collection=collection.name, statistics=codec.statistics_to_proto(statistics))


def register(server: grpc.aio.Server, state: ServerState) -> list[str]:
    pb_grpc.add_CollectionsServiceServicer_to_server(CollectionsServicer(state), server)
    pb_grpc.add_SearchServiceServicer_to_server(SearchServicer(state), server)
    return [COLLECTIONS_SERVICE, SEARCH_SERVICE]


async def startup(state: ServerState) -> None:
    """Open the collections of `[server] data_dir` (snapshots loaded, the store's later writes replayed)."""
    state.collections = await state.in_thread(CollectionManager, state.config.server.data_dir, state.models())
