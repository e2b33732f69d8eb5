"""Every EncoderService RPC and every bad-input case, through the real server on its embedded defaults."""

import urllib.request
import zlib

import grpc
import numpy as np
import pytest

from ferret.encoders.base import EncoderKind, Side
from ferret.encoders.bm25 import Analyzer
from ferret.encoders.registry import default_minilm_path
from ferret.proto.ferret.v1 import encoder_pb2 as pb
from ferret.proto.ferret.v1 import encoder_pb2_grpc as pb_grpc

MINILM = "all-MiniLM-L6-v2"
TEXTS = [
    "What is the capital of France?",
    "Paris is the capital and most populous city of France, with an estimated population of two million.",
    "Photosynthesis",
    "gRPC uses HTTP/2 for transport and Protocol Buffers as the interface description language.",
]


@pytest.fixture(scope="module")
def reference_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(default_minilm_path(), device="cpu", local_files_only=True)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_list_models(ferret_client):
    models = {m.name: m for m in ferret_client.list_models()}
    assert set(models) == {MINILM, "bm25"}
    dense, sparse = models[MINILM], models["bm25"]
    assert (dense.kind, dense.dimension, dense.max_length) == (EncoderKind.DENSE, 384, 256)
    assert dense.family == "sentence-transformers"
    assert (sparse.kind, sparse.vocab_size) == (EncoderKind.SPARSE, 2**32)
    assert sparse.sides == (Side.QUERY,)


@pytest.mark.parametrize("normalize", [True, False])
def test_embed_equals_sentence_transformers(ferret_client, reference_model, normalize):
    result = ferret_client.embed(TEXTS, model=MINILM, normalize=normalize)
    expected = reference_model.encode(TEXTS, normalize_embeddings=normalize, convert_to_numpy=True)
    assert result.model == MINILM
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (len(TEXTS), 384)
    cosines = _cosines(result.vectors, expected)
    assert cosines.min() >= 0.9999, cosines
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), np.linalg.norm(expected, axis=1),
                               rtol=1e-4)


def test_embed_defaults_to_the_dense_model_and_reports_timing(ferret_client):
    result = ferret_client.embed(TEXTS[:2], side="query")
    assert result.model == MINILM
    t = result.timing
    assert t.tokenize_ns > 0 and t.inference_ns > 0
    assert t.total_ns >= t.inference_ns + t.tokenize_ns
    # Tokens the model saw: special tokens included.
    ids = ferret_client.tokenize(TEXTS[:2])
    assert result.tokens == sum(len(row) for row, _ in ids)


def test_embed_matryoshka_dimensions(ferret_client):
    full = ferret_client.embed(TEXTS, normalize=False).vectors
    cut = ferret_client.embed(TEXTS, dimensions=128).vectors
    assert cut.shape == (len(TEXTS), 128)
    expected = full[:, :128] / np.linalg.norm(full[:, :128], axis=1, keepdims=True)
    np.testing.assert_allclose(cut, expected, atol=1e-5)


def test_embed_stream_returns_every_batch_in_order(ferret_client):
    batches = [TEXTS[:1], TEXTS[1:3], TEXTS[3:], TEXTS]
    results = list(ferret_client.embed_stream(batches))
    assert [r.request_id for r in results] == ["0", "1", "2", "3"]
    whole = ferret_client.embed(TEXTS).vectors
    stacked = np.concatenate([r.vectors for r in results[:3]])
    np.testing.assert_allclose(stacked, whole, atol=1e-5)
    np.testing.assert_allclose(results[3].vectors, whole, atol=1e-5)


def test_embed_stream_error_ends_the_stream_with_its_status(ferret_client):
    code, details = _code(lambda: list(ferret_client.embed_stream([TEXTS[:1], [""]])))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "texts[0] is empty" in details


def test_embed_sparse_bm25_query_side(ferret_client):
    text = "The cats' owners were running, and running fast!"
    result = ferret_client.embed_sparse([text], return_tokens=True)
    assert result.model == "bm25"
    vector, tokens = result.vectors[0], result.tokens[0]
    terms = Analyzer()(text)
    expected = {zlib.crc32(t.encode()): terms.count(t) for t in set(terms)}
    assert vector.indices.dtype == np.uint32 and vector.values.dtype == np.float32
    assert list(vector.indices) == sorted(expected)
    assert list(vector.values) == [expected[i] for i in sorted(expected)]
    assert dict(zip(vector.indices.tolist(), tokens, strict=True)) == {zlib.crc32(t.encode()): t for t in terms}
    assert "run" in tokens and result.vectors[0].values[tokens.index("run")] == 2.0


def test_tokenize(ferret_client, reference_model):
    rows = ferret_client.tokenize(["hello world", "Ferret"], model=MINILM, return_tokens=True)
    expected = reference_model.tokenizer(["hello world", "Ferret"])["input_ids"]
    assert [ids for ids, _ in rows] == expected
    assert rows[0][1] == ["[CLS]", "hello", "world", "[SEP]"]
    bm25 = ferret_client.tokenize(["running cats"], model="bm25", return_tokens=True)
    assert bm25[0][1] == ["run", "cat"]


@pytest.mark.parametrize(
    "call, code, message",
    [
        (lambda c: c.embed([]), grpc.StatusCode.INVALID_ARGUMENT, "texts is empty"),
        (lambda c: c.embed(["fine", "   "]), grpc.StatusCode.INVALID_ARGUMENT, "texts[1] is empty"),
        (lambda c: c.embed(["x" * 200_001]), grpc.StatusCode.INVALID_ARGUMENT, "over the server's limit"),
        (lambda c: c.embed(["word " * 400], truncate=False), grpc.StatusCode.INVALID_ARGUMENT,
         "allow truncation"),
        (lambda c: c.embed(["a"], model="no-such-model"), grpc.StatusCode.NOT_FOUND, "loaded models"),
        (lambda c: c.embed(["a"], dimensions=385), grpc.StatusCode.INVALID_ARGUMENT, "ask for 1..384"),
        (lambda c: c.embed(["a"], instruction="Given a query"), grpc.StatusCode.INVALID_ARGUMENT,
         "takes no instruction"),
        (lambda c: c.embed(["a"], model="bm25"), grpc.StatusCode.INVALID_ARGUMENT, "use EmbedSparse"),
        (lambda c: c.embed_sparse(["a"], model=MINILM), grpc.StatusCode.INVALID_ARGUMENT, "use Embed"),
        (lambda c: c.embed_sparse(["a"], side="document"), grpc.StatusCode.INVALID_ARGUMENT,
         "does not encode the document side"),
        (lambda c: c.embed_sparse([]), grpc.StatusCode.INVALID_ARGUMENT, "texts is empty"),
        (lambda c: c.tokenize([""]), grpc.StatusCode.INVALID_ARGUMENT, "texts[0] is empty"),
        (lambda c: c.tokenize(["a"], model="nope"), grpc.StatusCode.NOT_FOUND, "unknown model"),
    ],
)
def test_bad_input_gets_a_clear_status(ferret_client, call, code, message):
    got, details = _code(lambda: call(ferret_client))
    assert got is code
    assert message in details
    # The server lives on.
    assert ferret_client.embed(["still alive"]).vectors.shape == (1, 384)


def test_unknown_enum_value_is_invalid(ferret_server):
    with grpc.insecure_channel(ferret_server.address) as channel:
        stub = pb_grpc.EncoderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Embed(pb.EmbedRequest(texts=["a"], side=7), timeout=30)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "unknown side" in info.value.details()


def test_metrics_endpoint(ferret_server, ferret_client):
    ferret_client.embed(["metrics please"])
    body = urllib.request.urlopen(f"http://127.0.0.1:{ferret_server.server.metrics_port}/metrics",
                                  timeout=10).read().decode()
    assert 'ferret_requests_total{code="OK",method="Embed"}' in body
    assert "ferret_request_seconds_bucket" in body
    assert f'ferret_batch_texts_count{{model="{MINILM}/embed"}}' in body
    assert f'ferret_queue_depth{{model="{MINILM}/embed"}}' in body


def test_health_and_reflection(ferret_server, ferret_client):
    assert ferret_client.health() == "SERVING"
    assert ferret_client.health("ferret.v1.EncoderService") == "SERVING"
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(ferret_server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        response = next(stub.ServerReflectionInfo(iter([request]), timeout=30))
    names = {s.name for s in response.list_services_response.service}
    assert {"ferret.v1.EncoderService", "grpc.health.v1.Health"} <= names
