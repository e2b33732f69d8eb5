"""Python client of a Ferret server: typed methods that return numpy arrays.

    from ferret.client import Client
    with Client("127.0.0.1:50051") as client:
        client.wait_ready()
        vectors = client.embed(["a query"], side="query").vectors   # float32 [1, 384]

Errors arrive as `grpc.RpcError` with the server's status code and message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ferret.encoders.base import CompressedText, EncoderKind, ModelInfo, Side, SparseVector
from ferret.proto.ferret.v1 import compress_pb2, compress_pb2_grpc
from ferret.proto.ferret.v1 import encoder_pb2 as pb
from ferret.proto.ferret.v1 import encoder_pb2_grpc as pb_grpc
from ferret.tensors import PROTO_DTYPES, WireDtype, from_message

DEFAULT_MAX_MESSAGE_MB = 256
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


def _truncate(truncate: bool) -> int:
    return pb.TRUNCATE_POLICY_END if truncate else pb.TRUNCATE_POLICY_ERROR


class Client:
    def __init__(self, address: str, api_key: str | None = None, tls: bool | str | Path = False,
                 max_message_mb: int = DEFAULT_MAX_MESSAGE_MB, timeout: float | None = 60.0):
        """`tls`: False for plaintext, True for TLS with the system roots, or a path to a root CA (PEM).

        `timeout` is the default deadline of each call in seconds.
        """
        limit = max_message_mb * 1024 * 1024
        options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
        if tls:
            roots = Path(tls).read_bytes() if not isinstance(tls, bool) else None
            self._channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(roots), options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self.timeout = timeout
        self._encoder = pb_grpc.EncoderServiceStub(self._channel)
        self._compress = compress_pb2_grpc.CompressServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

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
