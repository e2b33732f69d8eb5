"""Python client of a Ferret server: typed methods that return numpy arrays.

    from ferret.client import Client
    with Client("127.0.0.1:50051") as client:
        client.wait_ready()
        vectors = client.embed(["a query"], side="query").vectors   # float32 [1, 384]

Collections and search:

    client.create_collection("docs", {"dense": [{"name": "emb", "encoder": "all-MiniLM-L6-v2"}],
                                      "sparse": [{"name": "bm25", "encoder": "bm25"}]})
    client.upsert("docs", [{"id": "d1", "text": "...", "metadata": {"year": 2021}}])
    result = client.query("docs", [SubSearch("emb", text="q"), SubSearch("bm25", text="q")], limit=5)
    for hit in result.hits: print(hit.id, hit.score, hit.sources["bm25"].rank)

Tool retrieval:

    client.upsert_tools([Tool(id="w", name="Weather", description="forecast for a city")])
    client.record_usage([("will it rain in Rome", ["w"])])
    for hit in client.retrieve_tools("is it sunny tomorrow", k=5).hits: print(hit.tool_id, hit.signals)

Errors arrive as `grpc.RpcError` with the server's status code and message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ferret.encoders.base import CompressedText, EncoderKind, ModelInfo, Side, SparseVector
from ferret.indexing.bm25 import TermStatistics
from ferret.indexing.collection import Hit
from ferret.indexing.fields import SubSearch
from ferret.indexing.fusion import RRF, Fusion
from ferret.indexing.schema import CollectionSchema
from ferret.indexing.store import Document
from ferret.proto import codec, tools_codec
from ferret.proto.ferret.v1 import collections_pb2 as cpb
from ferret.proto.ferret.v1 import collections_pb2_grpc as cpb_grpc
from ferret.proto.ferret.v1 import compress_pb2, compress_pb2_grpc
from ferret.proto.ferret.v1 import encoder_pb2 as pb
from ferret.proto.ferret.v1 import encoder_pb2_grpc as pb_grpc
from ferret.proto.ferret.v1 import tools_pb2 as tpb
from ferret.proto.ferret.v1 import tools_pb2_grpc as tpb_grpc
from ferret.tensors import PROTO_DTYPES, WireDtype, from_message
from ferret.tools.catalogue import Tool
from ferret.tools.retriever import Mode, RetrieveRequest, SetOptions

from .tools import ToolList, ToolRetrieval, ToolsWriteResult

DEFAULT_MAX_MESSAGE_MB = 256
DEFAULT_FUSION = RRF()
_SIDES = {None: pb.SIDE_UNSPECIFIED, "query": pb.SIDE_QUERY, "document": pb.SIDE_DOCUMENT,
          Side.QUERY: pb.SIDE_QUERY, Side.DOCUMENT: pb.SIDE_DOCUMENT}
_SIDE_NAMES = {pb.SIDE_QUERY: Side.QUERY, pb.SIDE_DOCUMENT: Side.DOCUMENT}
_KINDS = {pb.MODEL_KIND_DENSE: EncoderKind.DENSE, pb.MODEL_KIND_SPARSE: EncoderKind.SPARSE,
          pb.MODEL_KIND_COMPRESSOR: EncoderKind.COMPRESSOR}


@dataclass(frozen=True)
class Timing:
    queue_ns: int
    tokenize_ns: int
    inference_ns: int
    total_ns: int

    @classmethod
    def from_proto(cls, t: pb.Timing) -> Timing:
        return cls(t.queue_ns, t.tokenize_ns, t.inference_ns, t.total_ns)


@dataclass(frozen=True)
class DenseResult:
    model: str
    vectors: np.ndarray  # float32 [texts, dim]
    timing: Timing
    tokens: int
    request_id: str = ""


@dataclass(frozen=True)
class SparseResult:
    model: str
    vectors: list[SparseVector]
    tokens: list[list[str]]  # per vector, the vocabulary string of each index (when asked for)
    timing: Timing
    token_count: int


@dataclass(frozen=True)
class CompressResult:
    model: str
    decoder: str
    pooling_factor: int
    # One per text, float32 whatever the wire dtype: each plugs into `ferret.client.arc.splice_compressed`.
    texts: list[CompressedText]
    timing: Timing
    tokens: int
    request_id: str = ""


def compressed_text(message: compress_pb2.CompressedText, pooling_factor: int, decoder: str) -> CompressedText:
    """A float32 `CompressedText` (ready for `splice_compressed`) from its wire form."""
    return CompressedText(vectors=from_message(message.vectors), num_tokens=message.num_tokens,
                          pooling_factor=pooling_factor, decoder=decoder,
                          continuation=from_message(message.continuation))


def _compressed(response: compress_pb2.CompressResponse) -> CompressResult:
    texts = [compressed_text(t, response.pooling_factor, response.decoder) for t in response.texts]
    return CompressResult(response.model, response.decoder, response.pooling_factor, texts,
                          Timing.from_proto(response.timing), response.tokens, response.request_id)


def _compress_request(texts: Sequence[str], model: str, pooling_factor: int | None, decoder: str | None,
                      dtype: str | WireDtype, truncate: bool, request_id: str = "") -> compress_pb2.CompressRequest:
    return compress_pb2.CompressRequest(model=model, texts=list(texts), pooling_factor=pooling_factor or 0,
                                        decoder=decoder or "", dtype=PROTO_DTYPES[WireDtype(dtype)],
                                        truncate=_truncate(truncate), request_id=request_id)


def decode_matrix(matrix: pb.DenseMatrix) -> np.ndarray:
    return np.frombuffer(matrix.data, dtype="<f4").reshape(matrix.rows, matrix.dim)


def _dense(response: pb.EmbedResponse) -> DenseResult:
    return DenseResult(response.model, decode_matrix(response.embeddings), Timing.from_proto(response.timing),
                       response.tokens, response.request_id)


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    schema: CollectionSchema
    version: int
    count: int
    aliases: list[str]

    @classmethod
    def from_proto(cls, m: cpb.CollectionInfo) -> CollectionInfo:
        return cls(m.name, codec.schema_from_proto(m.schema), m.version, m.count, list(m.aliases))


@dataclass(frozen=True)
class WriteResult:
    collection: str  # the collection written (an alias resolved)
    version: int
    count: int  # documents written or deleted


@dataclass(frozen=True)
class GetResult:
    collection: str
    version: int
    documents: list[Document]  # `vectors` filled when asked for
    missing_ids: list[str]


@dataclass(frozen=True)
class QueryResult:
    collection: str
    version: int
    hits: list[Hit]  # each with `sources`: sub-search name -> SourceScore(score, rank); `compressed` when asked
    time_ms: float


def _document_message(doc: Document | Mapping[str, Any]) -> cpb.Document:
    if isinstance(doc, Mapping):
        doc = Document(**doc)
    message = cpb.Document(id=doc.id, text=doc.text, metadata=codec.dict_to_struct(doc.metadata))
    for name, vector in doc.vectors.items():
        if codec.is_sparse(vector):
            message.sparse[name].CopyFrom(codec.encode_sparse(vector, f"document {doc.id!r} field {name!r}"))
        else:
            message.dense[name].CopyFrom(codec.encode_dense(vector))
    return message


def _document(message: cpb.Document) -> Document:
    vectors: dict[str, Any] = {n: codec.decode_dense(v, n) for n, v in message.dense.items()}
    vectors.update({n: codec.decode_sparse(v, n) for n, v in message.sparse.items()})
    return Document(message.id, message.text, codec.struct_to_dict(message.metadata), vectors)


def _sub_search_message(search: SubSearch) -> cpb.SubSearch:
    message = cpb.SubSearch(field=search.field, limit=search.limit, weight=search.weight,
                            encoder=search.encoder or "", exact=search.exact, name=search.name or "")
    if search.text is not None:
        message.text = search.text
    elif codec.is_sparse(search.vector):
        message.sparse_vector.CopyFrom(codec.encode_sparse(search.vector, f"sub-search {search.field!r}"))
    elif search.vector is not None:
        message.vector.CopyFrom(codec.encode_dense(search.vector))
    if search.statistics is not None:
        message.statistics.CopyFrom(codec.statistics_to_proto(search.statistics))
    return message


def query_message(collection: str, searches: Sequence[SubSearch], fusion: Fusion = DEFAULT_FUSION,
                  filter: Mapping[str, Any] | None = None, limit: int = 10, offset: int = 0,
                  with_text: bool = False, with_metadata: bool = False, compressed_for: str | None = None,
                  compressed_dtype: str | WireDtype = WireDtype.FLOAT32) -> cpb.QueryRequest:
    """The QueryRequest of one query (`Client.batch_query` takes a list of these)."""
    return cpb.QueryRequest(collection=collection, searches=[_sub_search_message(s) for s in searches],
                            fusion=codec.fusion_to_proto(fusion), filter=codec.filter_to_proto(filter),
                            limit=limit, offset=offset, with_text=with_text, with_metadata=with_metadata,
                            compressed_for=compressed_for or "",
                            compressed_dtype=PROTO_DTYPES[WireDtype(compressed_dtype)])


def _query_result(m: cpb.QueryResponse) -> QueryResult:
    hits = [Hit(h.id, h.score, codec.source_scores(h), h.text or None,
                codec.struct_to_dict(h.metadata) if h.HasField("metadata") else None, h.version,
                compressed_text(h.compressed, m.pooling_factor, m.compressed_for)
                if h.HasField("compressed") else None)
            for h in m.hits]
    return QueryResult(m.collection, m.version, hits, m.time_ms)


def _truncate(truncate: bool) -> int:
    return pb.TRUNCATE_POLICY_END if truncate else pb.TRUNCATE_POLICY_ERROR


class Client:
    def __init__(self, address: str, api_key: str | None = None, tls: bool | str | Path = False,
                 max_message_mb: int = DEFAULT_MAX_MESSAGE_MB, timeout: float | None = 60.0,
                 metadata: Sequence[tuple[str, str]] = ()):
        """`tls`: False for plaintext, True for TLS with the system roots, or a path to a root CA (PEM).

        `timeout` is the default deadline of each call in seconds. `metadata` goes with every call, e.g.
        `[("application", "ferret-router")]` for a router on a Ray Serve cluster that runs several apps.
        """
        limit = max_message_mb * 1024 * 1024
        options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
        if tls:
            roots = Path(tls).read_bytes() if not isinstance(tls, bool) else None
            self._channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(roots), options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._metadata = ((("authorization", f"Bearer {api_key}"),) if api_key else ()) + tuple(metadata)
        self.timeout = timeout
        self._encoder = pb_grpc.EncoderServiceStub(self._channel)
        self._compress = compress_pb2_grpc.CompressServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._collections = cpb_grpc.CollectionsServiceStub(self._channel)
        self._search = cpb_grpc.SearchServiceStub(self._channel)
        self._tools = tpb_grpc.ToolsServiceStub(self._channel)

    def _call(self, method, request, timeout: float | None):
        return method(request, timeout=timeout or self.timeout, metadata=self._metadata)

    def embed(self, texts: Sequence[str], model: str = "", side: str | Side | None = None,
              instruction: str = "", dimensions: int | None = None, normalize: bool = True,
              truncate: bool = True, timeout: float | None = None) -> DenseResult:
        """Dense vectors of `texts` (float32 [len(texts), dim] in `.vectors`)."""
        request = pb.EmbedRequest(model=model, texts=list(texts), side=_SIDES[side], instruction=instruction,
                                  dimensions=dimensions or 0, normalize=normalize, truncate=_truncate(truncate))
        return _dense(self._call(self._encoder.Embed, request, timeout))

    def embed_stream(self, batches: Iterable[Sequence[str]], model: str = "", side: str | Side | None = None,
                     dimensions: int | None = None, normalize: bool = True,
                     timeout: float | None = None) -> Iterator[DenseResult]:
        """Bulk embedding over one stream: one result per batch, in order (`request_id` is the batch number)."""
        requests = (pb.EmbedRequest(model=model, texts=list(b), side=_SIDES[side], dimensions=dimensions or 0,
                                    normalize=normalize, request_id=str(i)) for i, b in enumerate(batches))
        for response in self._encoder.EmbedStream(requests, timeout=timeout, metadata=self._metadata):
            yield _dense(response)

    def embed_sparse(self, texts: Sequence[str], model: str = "", side: str | Side | None = None,
                     instruction: str = "", truncate: bool = True, return_tokens: bool = False,
                     timeout: float | None = None) -> SparseResult:
        request = pb.EmbedSparseRequest(model=model, texts=list(texts), side=_SIDES[side],
                                        instruction=instruction, truncate=_truncate(truncate),
                                        return_tokens=return_tokens)
        response = self._call(self._encoder.EmbedSparse, request, timeout)
        vectors = [SparseVector(np.frombuffer(e.indices, dtype="<u4"), np.frombuffer(e.values, dtype="<f4"))
                   for e in response.embeddings]
        return SparseResult(response.model, vectors, [list(e.tokens) for e in response.embeddings],
                            Timing.from_proto(response.timing), response.tokens)

    def compress(self, texts: Sequence[str], model: str = "", pooling_factor: int | None = None,
                 decoder: str | None = None, dtype: str | WireDtype = WireDtype.FLOAT32, truncate: bool = True,
                 timeout: float | None = None) -> CompressResult:
        """Each text as m = ceil(n / pooling_factor) vectors plus `<Cont>` in `decoder`'s hidden size.

        `dtype` is what travels ("float32", "bfloat16", "float16"); the vectors come back as float32 arrays.
        None for `pooling_factor` / `decoder` means the model's default.
        """
        request = _compress_request(texts, model, pooling_factor, decoder, dtype, truncate)
        return _compressed(self._call(self._compress.Compress, request, timeout))

    def compress_stream(self, batches: Iterable[Sequence[str]], model: str = "", pooling_factor: int | None = None,
                        decoder: str | None = None, dtype: str | WireDtype = WireDtype.FLOAT32,
                        timeout: float | None = None) -> Iterator[CompressResult]:
        """Bulk compression over one stream: one result per batch, in order (`request_id` is the batch number)."""
        requests = (_compress_request(b, model, pooling_factor, decoder, dtype, True, request_id=str(i))
                    for i, b in enumerate(batches))
        for response in self._compress.CompressStream(requests, timeout=timeout, metadata=self._metadata):
            yield _compressed(response)

    def tokenize(self, texts: Sequence[str], model: str = "", side: str | Side | None = None,
                 instruction: str = "", return_tokens: bool = False,
                 timeout: float | None = None) -> list[tuple[list[int], list[str]]]:
        """Per text: the token ids the model is fed, and (when asked for) their vocabulary strings."""
        request = pb.TokenizeRequest(model=model, texts=list(texts), side=_SIDES[side], instruction=instruction,
                                     return_tokens=return_tokens)
        response = self._call(self._encoder.Tokenize, request, timeout)
        return [(list(t.ids), list(t.tokens)) for t in response.texts]

    def list_models(self, timeout: float | None = None) -> list[ModelInfo]:
        response = self._call(self._encoder.ListModels, pb.ListModelsRequest(), timeout)
        return [ModelInfo(name=m.name, family=m.family, kind=_KINDS[m.kind], max_length=m.max_length,
                          dimension=m.dimension, vocab_size=m.vocab_size,
                          sides=tuple(_SIDE_NAMES[s] for s in m.sides), matryoshka_dims=tuple(m.matryoshka_dims),
                          supports_instructions=m.supports_instructions, extra=dict(m.extra))
                for m in response.models]

    # -- collections --------------------------------------------------------------------------------

    def create_collection(self, name: str, schema: CollectionSchema | Mapping[str, Any],
                          timeout: float | None = None) -> CollectionInfo:
        """`schema` as a CollectionSchema or its plain form {"dense": [{"name", "encoder", "dim", "metric",
        "factory"}], "sparse": [{"name", "encoder", "k1", "b", "stem", "approximate"}]}."""
        if not isinstance(schema, CollectionSchema):
            schema = CollectionSchema.from_dict(dict(schema))
        request = cpb.CreateCollectionRequest(name=name, schema=codec.schema_to_proto(schema))
        return CollectionInfo.from_proto(self._call(self._collections.CreateCollection, request, timeout))

    def get_collection(self, name: str, timeout: float | None = None) -> CollectionInfo:
        request = cpb.GetCollectionRequest(name=name)
        return CollectionInfo.from_proto(self._call(self._collections.GetCollection, request, timeout))

    def list_collections(self, timeout: float | None = None) -> list[CollectionInfo]:
        response = self._call(self._collections.ListCollections, cpb.ListCollectionsRequest(), timeout)
        return [CollectionInfo.from_proto(c) for c in response.collections]

    def drop_collection(self, name: str, timeout: float | None = None) -> None:
        self._call(self._collections.DropCollection, cpb.DropCollectionRequest(name=name), timeout)

    def update_aliases(self, set_aliases: Mapping[str, str] | None = None, delete_aliases: Sequence[str] = (),
                       timeout: float | None = None) -> None:
        """Create/re-point (alias -> collection) and delete aliases in one atomic step."""
        operations = [cpb.AliasOperation(delete=cpb.DeleteAlias(alias=a)) for a in delete_aliases]
        operations += [cpb.AliasOperation(create=cpb.CreateAlias(alias=a, collection=c))
                       for a, c in (set_aliases or {}).items()]
        self._call(self._collections.UpdateAliases, cpb.UpdateAliasesRequest(operations=operations), timeout)

    def list_aliases(self, timeout: float | None = None) -> dict[str, str]:
        response = self._call(self._collections.ListAliases, cpb.ListAliasesRequest(), timeout)
        return {a.alias: a.collection for a in response.aliases}

    def upsert(self, collection: str, documents: Sequence[Document | Mapping[str, Any]],
               timeout: float | None = None) -> WriteResult:
        """Insert or replace documents (Document or {"id", "text", "metadata", "vectors"}); returns once
        they are durable. `vectors` holds precomputed fields: dense arrays, sparse (indices, values)."""
        request = cpb.UpsertRequest(collection=collection, documents=[_document_message(d) for d in documents])
        response = self._call(self._collections.Upsert, request, timeout)
        return WriteResult(response.collection, response.version, response.count)

    def delete(self, collection: str, ids: Sequence[str], timeout: float | None = None) -> WriteResult:
        response = self._call(self._collections.Delete, cpb.DeleteRequest(collection=collection, ids=list(ids)),
                              timeout)
        return WriteResult(response.collection, response.version, response.count)

    def get(self, collection: str, ids: Sequence[str], with_vectors: bool = False,
            timeout: float | None = None) -> GetResult:
        request = cpb.GetRequest(collection=collection, ids=list(ids), with_vectors=with_vectors)
        response = self._call(self._collections.Get, request, timeout)
        return GetResult(response.collection, response.version, [_document(d) for d in response.documents],
                         list(response.missing_ids))

    def count(self, collection: str, filter: Mapping[str, Any] | None = None,
              timeout: float | None = None) -> int:
        request = cpb.CountRequest(collection=collection, filter=codec.filter_to_proto(filter))
        return self._call(self._collections.Count, request, timeout).count

    # -- search -------------------------------------------------------------------------------------

    def query(self, collection: str, searches: Sequence[SubSearch], fusion: Fusion = DEFAULT_FUSION,
              filter: Mapping[str, Any] | None = None, limit: int = 10, offset: int = 0,
              with_text: bool = False, with_metadata: bool = False, compressed_for: str | None = None,
              compressed_dtype: str | WireDtype = WireDtype.FLOAT32, timeout: float | None = None) -> QueryResult:
        """Run the sub-searches, fuse them (RRF or WeightedSum), filter and page; hits best first.

        `compressed_for` names a decoder of the collection's compressor: each hit's `.compressed` then holds
        its document as float32 `CompressedText` for that decoder (sent as `compressed_dtype`), ready for
        `ferret.client.arc.splice_compressed`.
        """
        request = query_message(collection, searches, fusion, filter, limit, offset, with_text, with_metadata,
                                compressed_for, compressed_dtype)
        return _query_result(self._call(self._search.Query, request, timeout))

    def batch_query(self, queries: Sequence[cpb.QueryRequest], timeout: float | None = None) -> list[QueryResult]:
        """Several queries in one call (build each with `query_message`); results in the same order."""
        response = self._call(self._search.BatchQuery, cpb.BatchQueryRequest(queries=list(queries)), timeout)
        return [_query_result(r) for r in response.results]

    def term_statistics(self, collection: str, field: str, texts: Sequence[str],
                        timeout: float | None = None) -> TermStatistics:
        """BM25 field `field`'s statistics for the terms of `texts`. Summed over the shards of a collection
        (`TermStatistics.sum`) and passed as `SubSearch(field, text=..., statistics=...)` to each shard, they
        make the shards score like the unsharded collection."""
        request = cpb.TermStatisticsRequest(collection=collection, field=field, texts=list(texts))
        response = self._call(self._search.TermStatistics, request, timeout)
        return codec.statistics_from_proto(response.statistics, f"collection {response.collection!r}")

    # -- tools --------------------------------------------------------------------------------------

    def upsert_tools(self, tools: Sequence[Tool | Mapping[str, Any]], timeout: float | None = None) -> ToolsWriteResult:
        """Insert or replace tools (Tool or its fields as a mapping; `parameters` a dict or JSON text)."""
        messages = [tools_codec.tool_to_proto(t if isinstance(t, Tool) else Tool(**t)) for t in tools]
        response = self._call(self._tools.UpsertTools, tpb.UpsertToolsRequest(tools=messages), timeout)
        return ToolsWriteResult(response.catalogue_version, response.count)

    def delete_tools(self, ids: Sequence[str], timeout: float | None = None) -> ToolsWriteResult:
        response = self._call(self._tools.DeleteTools, tpb.DeleteToolsRequest(ids=list(ids)), timeout)
        return ToolsWriteResult(response.catalogue_version, response.count)

    def list_tools(self, namespace: str | None = None, tags: Sequence[str] = (),
                   timeout: float | None = None) -> ToolList:
        request = tpb.ListToolsRequest(namespace=namespace, tags=list(tags))
        response = self._call(self._tools.ListTools, request, timeout)
        return ToolList(response.catalogue_version, [tools_codec.tool_from_proto(t) for t in response.tools])

    def record_usage(self, usages: Sequence[tuple[str, Sequence[str]]],
                     timeout: float | None = None) -> ToolsWriteResult:
        """Record (query, tool ids) pairs; each query's embedding joins its tools' Tool2Vec vectors."""
        request = tpb.RecordUsageRequest(usages=[tpb.Usage(query=q, tool_ids=list(ids)) for q, ids in usages])
        response = self._call(self._tools.RecordUsage, request, timeout)
        return ToolsWriteResult(response.catalogue_version, response.count)

    def retrieve_tools(self, query: str, k: int = 10, mode: str | Mode = Mode.HYBRID, instruction: str = "",
                       namespace: str | None = None, tags: Sequence[str] = (), classifier: bool | None = None,
                       rerank: bool | None = None, rewrite: bool = False, set_mode: SetOptions | None = None,
                       timeout: float | None = None) -> ToolRetrieval:
        """The k tools `query` most likely needs (fewer in set mode). None for `classifier` / `rerank`
        means the server's default; True requires the trained stage (FAILED_PRECONDITION when stale)."""
        request = RetrieveRequest(query, k, mode, instruction, namespace, tuple(tags), classifier, rerank, set_mode)
        message = tools_codec.request_to_proto(request, rewrite)
        return ToolRetrieval.from_proto(self._call(self._tools.RetrieveTools, message, timeout))

    def retrieve_tools_batch(self, requests: Sequence[RetrieveRequest], rewrite: bool = False,
                             timeout: float | None = None) -> list[ToolRetrieval]:
        """Several retrievals in one call, ranked together; results in request order."""
        message = tpb.RetrieveToolsBatchRequest(
            requests=[tools_codec.request_to_proto(r, rewrite) for r in requests])
        response = self._call(self._tools.RetrieveToolsBatch, message, timeout)
        return [ToolRetrieval.from_proto(r) for r in response.results]

    # -- health -------------------------------------------------------------------------------------

    def health(self, service: str = "", timeout: float | None = None) -> str:
        """"SERVING", "NOT_SERVING", ... of one service ("" = the whole server)."""
        response = self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout or self.timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def wait_ready(self, timeout: float = 300.0, service: str = "") -> None:
        """Block until the server reports SERVING; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.health(service, timeout=5) == "SERVING":
                    return
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not SERVING after {timeout:.0f} s")
            time.sleep(0.1)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
