"""The CompressService: ARC-Encoder context compression for a named decoder, batched by a token budget."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from ferret.encoders.base import CompressedText, EncodeOptions, EncoderKind
from ferret.errors import InvalidArgument
from ferret.proto.ferret.v1 import compress_pb2 as pb
from ferret.proto.ferret.v1 import compress_pb2_grpc as pb_grpc
from ferret.proto.ferret.v1 import encoder_pb2
from ferret.server.encoder_service import encode_batched, find_model, ordered_stream
from ferret.server.errors import rpc
from ferret.server.state import ServerState
from ferret.tensors import WireDtype, to_message, wire_dtype

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CompressService"].full_name



@dataclass(frozen=True)
class CompressCall:
    """What one batch of texts shares: requests with equal calls are compressed together."""

    options: EncodeOptions
    pooling_factor: int
    decoder: str


def compressed_message(compressed: CompressedText, dtype: WireDtype) -> pb.CompressedText:
    """The wire form of a text compressed for a decoder (also what a collection hit carries)."""
    return pb.CompressedText(vectors=to_message(compressed.vectors, dtype), m=compressed.m,
                             num_tokens=compressed.num_tokens, continuation=to_message(compressed.continuation, dtype),
                             continuation_index=compressed.continuation_index)


class CompressServicer(pb_grpc.CompressServiceServicer):
    def __init__(self, state: ServerState):
        self.state = state

    async def _compress(self, request: pb.CompressRequest,
                        context: grpc.aio.ServicerContext) -> pb.CompressResponse:
        encoder = find_model(self.state, request.model, EncoderKind.COMPRESSOR, "Compress")
        dtype = wire_dtype(request.dtype)
        if request.truncate not in encoder_pb2.TruncatePolicy.values():
            raise InvalidArgument(f"unknown truncate value {request.truncate}; use TRUNCATE_POLICY_END or "
                                  "TRUNCATE_POLICY_ERROR")
        factor = request.pooling_factor or encoder.pooling_factor
        if factor > encoder.info.max_length:
            raise InvalidArgument(f"pooling_factor={factor} exceeds the {encoder.info.max_length}-token input "
                                  f"limit of model {encoder.info.name!r}; use a factor such as 4 or 8")
        # Resolves the default and rejects an unknown decoder before the texts wait in the queue.
        decoder = encoder.decoders[encoder.decoder_index(request.decoder or None)]
        call = CompressCall(EncodeOptions(truncate=request.truncate != encoder_pb2.TRUNCATE_POLICY_ERROR),
                            factor, decoder)

        def run(key: CompressCall, texts: list[str]) -> list[CompressedText]:
            return encoder.compress(texts, key.options, pooling_factor=key.pooling_factor, decoder=key.decoder)

        encoded = await encode_batched(self.state, encoder, "compress", run, call, request.texts, call.options,
                                       context)
        texts = await self.state.in_thread(lambda: [compressed_message(c, dtype) for c in encoded.results])
        return pb.CompressResponse(model=encoder.info.name, decoder=decoder, pooling_factor=factor, texts=texts,
                                   timing=encoded.timing, tokens=encoded.tokens, request_id=request.request_id)

    @rpc
    async def Compress(self, request: pb.CompressRequest,
                       context: grpc.aio.ServicerContext) -> pb.CompressResponse:
        return await self._compress(request, context)

    @rpc
    async def CompressStream(self, request_iterator: AsyncIterator[pb.CompressRequest],
                             context: grpc.aio.ServicerContext) -> AsyncIterator[pb.CompressResponse]:
        async for response in ordered_stream(request_iterator, lambda r: self._compress(r, context)):
            yield response


def register(server: grpc.aio.Server, state: ServerState) -> list[str]:
    pb_grpc.add_CompressServiceServicer_to_server(CompressServicer(state), server)
    return [SERVICE_NAME]
