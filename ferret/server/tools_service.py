"""ToolsService: the tool-retrieval engine (`ferret.tools.engine.ToolEngine`) over gRPC.

Configured by an optional `[tools]` table:

    [tools]
    model = "all-MiniLM-L6-v2"   # dense model of the server's registry (default: its first dense model)
    data_dir = "tools"           # catalogue folder; relative paths are below [server] data_dir
    classifier_default = false   # multi-label classifier on when a request leaves it unset
    rerank_default = false       # ToolRefiner on when a request leaves it unset
    rewriter = "/models/qta"     # QTA: local causal LM checkpoint that rewrites queries asked to
    rewrite_template = "..."     # prompt with {query} and {tools} (default: ferret.tools.qta's)
    rewrite_timeout_s = 2.0      # past it the original query is used
    rewrite_max_new_tokens = 48

The engine embeds with the model the server already loaded (no second copy). Its errors carry their
statuses: bad tools, k = 0, duplicate ids INVALID_ARGUMENT; unknown ids NOT_FOUND; an empty catalogue or a
missing/stale second stage asked for explicitly FAILED_PRECONDITION. A failed write changes nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from ferret.encoders.base import EncoderKind, ModelLoadError
from ferret.errors import FailedPrecondition, FerretError, InvalidArgument, Unavailable
from ferret.proto import tools_codec as codec
from ferret.proto.ferret.v1 import tools_pb2 as pb
from ferret.proto.ferret.v1 import tools_pb2_grpc as pb_grpc
from ferret.server.config import ConfigError, _section
from ferret.server.encoder_service import find_model
from ferret.server.errors import rpc
from ferret.server.state import ServerState
from ferret.tools import qta
from ferret.tools.engine import ToolEngine
from ferret.tools.retriever import Mode, RetrieveRequest, ToolHit

log = logging.getLogger("ferret.server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ToolsService"].full_name
MAX_TOOLS_PER_CALL = 10_000
MAX_USAGES_PER_CALL = 10_000
MAX_BATCH_REQUESTS = 1024
# Tools shown to the rewriter: the hybrid top 3, as in the prompts `qta.preference_pairs` trains on.
REWRITE_CONTEXT_TOOLS = 3


@dataclass(frozen=True)
class ToolsSettings:
    model: str = ""
    data_dir: str = "tools"
    classifier_default: bool = False
    rerank_default: bool = False
    rewriter: str = ""
    rewrite_template: str = qta.DEFAULT_TEMPLATE
    rewrite_timeout_s: float = 2.0
    rewrite_max_new_tokens: int = qta.GenerationSettings.max_new_tokens


def tools_settings(state: ServerState) -> ToolsSettings:
    settings = _section(ToolsSettings, state.config.raw.get("tools", {}), "tools")
    if settings.rewrite_timeout_s <= 0:
        raise ConfigError("[tools]: rewrite_timeout_s must be a positive number of seconds")
    if not 1 <= settings.rewrite_max_new_tokens <= qta.MAX_NEW_TOKENS_LIMIT:
        raise ConfigError(f"[tools]: rewrite_max_new_tokens must be in 1..{qta.MAX_NEW_TOKENS_LIMIT}")
    if "{query}" not in settings.rewrite_template:
        raise ConfigError("[tools]: rewrite_template needs a {query} placeholder")
    return settings


@dataclass
class ToolsRuntime:
    """What the service serves from: the engine and, when configured, the QTA rewriter."""

    engine: ToolEngine
    rewriter: qta.QueryRewriter | None = None

    def close(self) -> None:
        self.engine.close()


@dataclass(frozen=True)
class Retrieval:
    hits: list[ToolHit]
    query: str
    rewrite: qta.Rewrite | None


def _retrieve(
    runtime: ToolsRuntime, requests: list[RetrieveRequest], rewrite: list[bool]
) -> tuple[int, list[Retrieval]]:
    """Rewrite the queries asked to (each bounded by the rewriter's timeout), then rank all together."""
    if any(rewrite) and runtime.rewriter is None:
        raise FailedPrecondition(
            "query rewriting was asked for but no rewriter is configured; set [tools] rewriter to a local "
            "causal LM checkpoint, or send rewrite = false"
        )
    rewrites: list[qta.Rewrite | None] = []
    for request, asked in zip(requests, rewrite, strict=True):
        rewrites.append(_rewrite(runtime, request) if asked else None)
    final = [r if w is None else replace(r, query=w.text) for r, w in zip(requests, rewrites, strict=True)]
    version, hits = runtime.engine.retrieve_tools_versioned(final)
    return version, [Retrieval(h, r.query, w) for h, r, w in zip(hits, final, rewrites, strict=True)]


def _rewrite(runtime: ToolsRuntime, request: RetrieveRequest) -> qta.Rewrite:
    engine = runtime.engine
    context = engine.retrieve_tools(
        RetrieveRequest(
            request.query,
            k=REWRITE_CONTEXT_TOOLS,
            mode=Mode.HYBRID,
            instruction=request.instruction,
            classifier=False,
            rerank=False,
        )
    )
    tools = engine.catalogue.get([h.tool_id for h in context])
    return runtime.rewriter.rewrite(request.query, tools)


def _response(retrieval: Retrieval, version: int, started: float) -> pb.RetrieveToolsResponse:
    w = retrieval.rewrite
    return pb.RetrieveToolsResponse(
        catalogue_version=version,
        hits=[codec.hit_to_proto(h) for h in retrieval.hits],
        query=retrieval.query,
        rewritten=w is not None and not w.fell_back,
        rewrite_note=w.reason if w is not None else "",
        time_ms=(time.perf_counter() - started) * 1000,
    )


class ToolsServicer(pb_grpc.ToolsServiceServicer):
    def __init__(self, state: ServerState):
        self.state = state

    def _runtime(self) -> ToolsRuntime:
        if self.state.tools is not None:
            return self.state.tools
        if not has_dense_model(self.state):  # raises UNAVAILABLE while the models load
            raise FailedPrecondition(
                "the tools service needs a dense model and this server loads none; add one under [models] "
                "(e.g. family = \"sentence-transformers\") and name it in [tools] model"
            )
        raise Unavailable("the tool catalogue is still opening; retry when the health service reports SERVING")

    @rpc
    async def UpsertTools(self, request: pb.UpsertToolsRequest, context) -> pb.ToolsWriteResponse:
        engine = self._runtime().engine
        if not 1 <= len(request.tools) <= MAX_TOOLS_PER_CALL:
            raise InvalidArgument(f"an upsert takes 1..{MAX_TOOLS_PER_CALL} tools, got {len(request.tools)}")
        tools = [codec.tool_from_proto(t) for t in request.tools]
        version = await self.state.in_thread(engine.upsert_tools, tools)
        return pb.ToolsWriteResponse(catalogue_version=version, count=len(tools))

    @rpc
    async def DeleteTools(self, request: pb.DeleteToolsRequest, context) -> pb.ToolsWriteResponse:
        engine = self._runtime().engine
        ids = list(dict.fromkeys(request.ids))
        version = await self.state.in_thread(engine.delete_tools, ids)
        return pb.ToolsWriteResponse(catalogue_version=version, count=len(ids))

    @rpc
    async def ListTools(self, request: pb.ListToolsRequest, context) -> pb.ListToolsResponse:
        engine = self._runtime().engine
        namespace = request.namespace if request.HasField("namespace") else None

        def run() -> pb.ListToolsResponse:
            version = engine.version()
            tools = engine.list_tools(namespace, list(request.tags))
            return pb.ListToolsResponse(catalogue_version=version, tools=[codec.tool_to_proto(t) for t in tools])

        return await self.state.in_thread(run)

    @rpc
    async def RecordUsage(self, request: pb.RecordUsageRequest, context) -> pb.RecordUsageResponse:
        engine = self._runtime().engine
        if not 1 <= len(request.usages) <= MAX_USAGES_PER_CALL:
            raise InvalidArgument(
                f"record usage takes 1..{MAX_USAGES_PER_CALL} records, got {len(request.usages)}"
            )
        usages = [(u.query, list(u.tool_ids)) for u in request.usages]

        def run() -> int:
            engine.record_usage(usages)
            return engine.version()

        version = await self.state.in_thread(run)
        return pb.RecordUsageResponse(catalogue_version=version, count=len(usages))

    @rpc
    async def RetrieveTools(self, request: pb.RetrieveToolsRequest, context) -> pb.RetrieveToolsResponse:
        started = time.perf_counter()
        runtime = self._runtime()
        version, (retrieval,) = await self.state.in_thread(
            _retrieve, runtime, [codec.request_from_proto(request)], [request.rewrite]
        )
        return _response(retrieval, version, started)

    @rpc
    async def RetrieveToolsBatch(
        self, request: pb.RetrieveToolsBatchRequest, context
    ) -> pb.RetrieveToolsBatchResponse:
        started = time.perf_counter()
        runtime = self._runtime()
        if not 1 <= len(request.requests) <= MAX_BATCH_REQUESTS:
            raise InvalidArgument(
                f"a batch takes 1..{MAX_BATCH_REQUESTS} requests, got {len(request.requests)}"
            )
        decoded = []
        for position, message in enumerate(request.requests):
            try:
                decoded.append(codec.request_from_proto(message))
            except InvalidArgument as exc:
                raise InvalidArgument(f"request {position}: {exc}") from None
        version, retrievals = await self.state.in_thread(
            _retrieve, runtime, decoded, [m.rewrite for m in request.requests]
        )
        return pb.RetrieveToolsBatchResponse(
            catalogue_version=version, results=[_response(r, version, started) for r in retrievals]
        )


def register(server: grpc.aio.Server, state: ServerState) -> list[str]:
    tools_settings(state)  # a bad [tools] table stops the server before it binds
    pb_grpc.add_ToolsServiceServicer_to_server(ToolsServicer(state), server)
    return [SERVICE_NAME]


def open_runtime(state: ServerState, settings: ToolsSettings) -> ToolsRuntime:
    try:
        encoder = find_model(state, settings.model, EncoderKind.DENSE, "ToolsService")
    except FerretError as exc:
        raise ModelLoadError(f"[tools] model: {exc}") from exc
    data_dir = Path(state.config.server.data_dir) / settings.data_dir  # an absolute data_dir stays as it is
    engine = ToolEngine(
        data_dir,
        encoder,
        classifier_default=settings.classifier_default,
        rerank_default=settings.rerank_default,
    )
    rewriter = None
    if settings.rewriter:
        rewriter = qta.QueryRewriter(
            settings.rewriter,
            template=settings.rewrite_template,
            settings=qta.GenerationSettings(max_new_tokens=settings.rewrite_max_new_tokens),
            timeout_s=settings.rewrite_timeout_s,
        )
    return ToolsRuntime(engine, rewriter)


def has_dense_model(state: ServerState) -> bool:
    return any(encoder.info.kind is EncoderKind.DENSE for encoder in state.models())


async def startup(state: ServerState) -> None:
    """Open the catalogue (cached description vectors, Tool2Vec sums) and load the rewriter, if any.

    A server without dense models (e.g. BM25 only) starts without the tools service unless [tools] names
    a model; its RPCs then answer FAILED_PRECONDITION.
    """
    settings = tools_settings(state)
    if not settings.model and not has_dense_model(state):
        log.info("tools service off: no dense model is loaded")
        return
    state.tools = await state.in_thread(open_runtime, state, settings)
