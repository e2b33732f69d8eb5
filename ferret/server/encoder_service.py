"""The EncoderService: dense and sparse embeddings, tokenisation and the model list."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import numpy as np

from ferret.encoders.base import RPC_OF_KIND, EncodeOptions, Encoder, EncoderKind, ModelInfo, Side, SparseVector
from ferret.errors import InvalidArgument, NotFound
from ferret.proto.ferret.v1 import encoder_pb2 as pb
from ferret.proto.ferret.v1 import encoder_pb2_grpc as pb_grpc
from ferret.server.errors import rpc
from ferret.server.state import ServerState

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EncoderService"].full_name

SIDES = {pb.SIDE_QUERY: Side.QUERY, pb.SIDE_DOCUMENT: Side.DOCUMENT}
KINDS = {EncoderKind.DENSE: pb.MODEL_KIND_DENSE, EncoderKind.SPARSE: pb.MODEL_KIND_SPARSE,
         EncoderKind.COMPRESSOR: pb.MODEL_KIND_COMPRESSOR}
# EmbedStream requests in flight at once per stream: enough to fill batches, bounded so a fast
# writer cannot queue unbounded work.
STREAM_WINDOW = 32

Req = TypeVar("Req")
Resp = TypeVar("Resp")


def resolve_side(side: int, info: ModelInfo) -> Side:
    if side == pb.SIDE_UNSPECIFIED:
        return info.sides[0] if len(info.sides) == 1 else Side.DOCUMENT
    if side not in SIDES:
        raise InvalidArgument(f"unknown side value {side}; use SIDE_QUERY or SIDE_DOCUMENT")
    return SIDES[side]


def model_description(info: ModelInfo) -> pb.ModelDescription:
    side_values = {v: k for k, v in SIDES.items()}
    return pb.ModelDescription(
        name=info.name, family=info.family, kind=KINDS[info.kind], dimension=info.dimension,
        vocab_size=info.vocab_size, max_length=info.max_length, sides=[side_values[s] for s in info.sides],
        matryoshka_dims=list(info.matryoshka_dims), supports_instructions=info.supports_instructions,
        extra=dict(info.extra),
    )


@dataclass
class Encoded:
    results: list
    timing: pb.Timing
    tokens: int


def find_model(state: ServerState, name: str, kind: EncoderKind, rpc_name: str) -> Encoder:
    """The model `name` (empty: the first of `kind`), which must be of `kind` to serve `rpc_name`."""
    registry = state.models()
    if not name:
        for encoder in registry:
            if encoder.info.kind is kind:
                return encoder
        raise NotFound(f"no {kind.value} model is loaded; name one of: {', '.join(registry.names())}")
    encoder = registry.get(name)
    if encoder.info.kind is not kind:
        raise InvalidArgument(f"model {name!r} is {encoder.info.kind.value}; {rpc_name} needs a {kind.value} "
                              f"model (use {RPC_OF_KIND[encoder.info.kind]} for this one, or pick another model)")
    return encoder


def check_texts(state: ServerState, texts: Sequence[str]) -> None:
    if not texts:
        raise InvalidArgument("texts is empty; send at least one text")
    limit = state.config.batching.max_text_chars
    for i, text in enumerate(texts):
        if not text.strip():
            raise InvalidArgument(f"texts[{i}] is empty; every text needs some content")
        if len(text) > limit:
            raise InvalidArgument(f"texts[{i}] has {len(text)} characters, over the server's limit of "
                                  f"{limit}; split it into passages")


async def encode_batched(state: ServerState, encoder: Encoder, call: str,
                         run: Callable[[Hashable, list[str]], Sequence[Any]], key: Hashable,
                         texts: Sequence[str], options: EncodeOptions,
                         context: grpc.aio.ServicerContext) -> Encoded:
    """Validate, count tokens off the event loop, then run `run(key, texts)` through the model's batcher.

    `call` names the batcher ("{model}/{call}"); `key` holds everything `run` needs besides the texts, so
    that only requests with equal keys share a batch.
    """
    arrived = time.perf_counter_ns()
    check_texts(state, texts)
    encoder.check_options(options)
    info = encoder.info
    ids = await state.in_thread(encoder.token_ids, list(texts), options)
    lengths = [len(x) for x in ids]
    if not options.truncate:
        for i, n in enumerate(lengths):
            if n > info.max_length:
                raise InvalidArgument(f"texts[{i}] is {n} tokens, over the {info.max_length} of model "
                                      f"{info.name!r}; shorten it or allow truncation")
    costs = [min(n, info.max_length) for n in lengths]
    tokenized = time.perf_counter_ns()
    remaining = context.time_remaining()
    deadline = None if remaining is None else asyncio.get_running_loop().time() + remaining
    batcher = state.batcher(f"{info.name}/{call}", run)
    done = await batcher.submit(key, list(texts), costs, deadline)
    batches = {t.batch_id: t.inference_ns for _, t in done}
    timing = pb.Timing(queue_ns=max(t.queue_ns for _, t in done), tokenize_ns=tokenized - arrived,
                       inference_ns=sum(batches.values()), total_ns=time.perf_counter_ns() - arrived)
    return Encoded([r for r, _ in done], timing, sum(costs))


async def ordered_stream(requests: AsyncIterator[Req],
                         handle: Callable[[Req], Awaitable[Resp]]) -> AsyncIterator[Resp]:
    """Responses of a bidirectional stream, in request order.

    Requests are read and handled ahead (up to STREAM_WINDOW) so that they batch together.
    """
    in_flight: asyncio.Queue[asyncio.Task | None] = asyncio.Queue(maxsize=STREAM_WINDOW)

    async def read() -> None:
        try:
            async for request in requests:
                await in_flight.put(asyncio.ensure_future(handle(request)))
        finally:
            await in_flight.put(None)

    reader = asyncio.ensure_future(read())
    try:
        while (task := await in_flight.get()) is not None:
            yield await task
        await reader  # a failed read surfaces here
    finally:
        reader.cancel()
        while not in_flight.empty():
            if (task := in_flight.get_nowait()) is not None:
                task.cancel()


class EncoderServicer(pb_grpc.EncoderServiceServicer):
    def __init__(self, state: ServerState):
        self.state = state

    async def _encode(self, encoder: Encoder, call: str, texts: Sequence[str], options: EncodeOptions,
                      context: grpc.aio.ServicerContext) -> Encoded:
        method = encoder.embed if call == "embed" else encoder.embed_sparse
        return await encode_batched(self.state, encoder, call, lambda opts, batch: method(batch, opts), options,
                                    texts, options, context)

    async def _embed(self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext) -> pb.EmbedResponse:
        encoder = find_model(self.state, request.model, EncoderKind.DENSE, "Embed")
        options = EncodeOptions(
            side=resolve_side(request.side, encoder.info),
            instruction=request.instruction or None,
            dimensions=request.dimensions or None,
            normalize=request.normalize if request.HasField("normalize") else True,
            truncate=request.truncate != pb.TRUNCATE_POLICY_ERROR,
        )
        encoded = await self._encode(encoder, "embed", request.texts, options, context)
        matrix = np.ascontiguousarray(np.stack(encoded.results), dtype="<f4")
        return pb.EmbedResponse(
            model=encoder.info.name,
            embeddings=pb.DenseMatrix(rows=matrix.shape[0], dim=matrix.shape[1], data=matrix.tobytes()),
            timing=encoded.timing, tokens=encoded.tokens, request_id=request.request_id,
        )

    @rpc
    async def Embed(self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext) -> pb.EmbedResponse:
        return await self._embed(request, context)

    @rpc
    async def EmbedStream(self, request_iterator: AsyncIterator[pb.EmbedRequest],
                          context: grpc.aio.ServicerContext) -> AsyncIterator[pb.EmbedResponse]:
        async for response in ordered_stream(request_iterator, lambda r: self._embed(r, context)):
            yield response

    @rpc
    async def EmbedSparse(self, request: pb.EmbedSparseRequest,
                          context: grpc.aio.ServicerContext) -> pb.EmbedSparseResponse:
        encoder = find_model(self.state, request.model, EncoderKind.SPARSE, "EmbedSparse")
        options = EncodeOptions(side=resolve_side(request.side, encoder.info),
                                instruction=request.instruction or None,
                                truncate=request.truncate != pb.TRUNCATE_POLICY_ERROR)
        encoded = await self._encode(encoder, "embed_sparse", request.texts, options, context)
        vectors: list[SparseVector] = encoded.results
        tokens = (await self.state.in_thread(lambda: [encoder.decode_tokens(v.indices) for v in vectors])
                  if request.return_tokens else [[] for _ in vectors])
        return pb.EmbedSparseResponse(
            model=encoder.info.name,
            embeddings=[pb.SparseEmbedding(indices=v.indices.astype("<u4").tobytes(),
                                           values=v.values.astype("<f4").tobytes(), tokens=t)
                        for v, t in zip(vectors, tokens, strict=True)],
            timing=encoded.timing, tokens=encoded.tokens,
        )

    @rpc
    async def Tokenize(self, request: pb.TokenizeRequest, context: grpc.aio.ServicerContext) -> pb.TokenizeResponse:
        registry = self.state.models()
        encoder = registry.get(request.model) if request.model else next(iter(registry))
        check_texts(self.state, request.texts)
        options = EncodeOptions(side=resolve_side(request.side, encoder.info),
                                instruction=request.instruction or None)
        encoder.check_options(options)

        def tokenize() -> list[pb.TokenizedText]:
            ids = encoder.token_ids(list(request.texts), options)
            return [pb.TokenizedText(ids=row, tokens=encoder.decode_tokens(np.asarray(row, dtype=np.uint32))
                                     if request.return_tokens else []) for row in ids]

        return pb.TokenizeResponse(model=encoder.info.name, texts=await self.state.in_thread(tokenize))

    @rpc
    async def ListModels(self, request: pb.ListModelsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[model_description(e.info) for e in self.state.models()])


def register(server: grpc.aio.Server, state: ServerState) -> list[str]:
    pb_grpc.add_EncoderServiceServicer_to_server(EncoderServicer(state), server)
    return [SERVICE_NAME]
