"""CompressService through a real server on a loopback port, serving a tiny random ARC-Encoder from a TOML config."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import torch

from ferret.client import Client
from ferret.client.arc import splice_compressed
from ferret.encoders.arc import compressed_length
from ferret.encoders.base import EncodeOptions, EncoderKind, Side
from ferret.proto.ferret.v1 import compress_pb2 as pb
from ferret.proto.ferret.v1 import compress_pb2_grpc as pb_grpc
from ferret.testing.random_arc import CORPUS, DECODER_DIM, tiny_llama_decoder

TEXTS = [
    "Pooled queries attend to every unpooled token.",
    "A",
    CORPUS,
    "Vaccines and randomized trials of proteins in cells.",
    CORPUS[:97],
]


@pytest.fixture(scope="module")
def encoder(arc_encoder):
    return arc_encoder


@pytest.fixture(scope="module")
def server(arc_server):
    return arc_server


@pytest.fixture(scope="module")
def client(server):
    with Client(server.address) as c:
        yield c


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.address) as channel:
        yield pb_grpc.CompressServiceStub(channel)


def test_list_models_describes_the_compressor(client):
    assert client.health("ferret.v1.CompressService") == "SERVING"
    arc = {m.name: m for m in client.list_models()}["arc-tiny"]
    assert arc.kind is EncoderKind.COMPRESSOR and arc.family == "arc-encoder"
    assert arc.dimension == DECODER_DIM and arc.max_length == 32_768
    assert arc.sides == (Side.DOCUMENT,)
    assert arc.extra["decoders"] == "llama,mistral" and arc.extra["pooling_factor"] == "8"
    assert arc.extra["encoder_dimension"] == "64"


@pytest.mark.parametrize("factor", [4, 8])
def test_compress_equals_in_process_encoder(client, encoder, factor):
    result = client.compress(TEXTS, model="arc-tiny", pooling_factor=factor, decoder="mistral")
    expected = encoder.compress(TEXTS, EncodeOptions(), pooling_factor=factor, decoder="mistral")
    lengths = [len(ids) for ids in encoder.token_ids(TEXTS, EncodeOptions())]
    assert any(n % factor for n in lengths) and min(lengths) < factor  # uneven groups and a single group
    assert (result.model, result.decoder, result.pooling_factor) == ("arc-tiny", "mistral", factor)
    assert result.tokens == sum(lengths)
    for got, want, n in zip(result.texts, expected, lengths, strict=True):
        assert got.num_tokens == n and got.m == compressed_length(n, factor) == math.ceil(n / factor)
        assert got.vectors.dtype == np.float32 and got.vectors.shape == (got.m, DECODER_DIM)
        assert np.abs(got.vectors - want.vectors).max() <= 1e-5
        np.testing.assert_array_equal(got.continuation, encoder.continuation("mistral"))
        assert got.continuation_index == got.m
        assert (got.decoder, got.pooling_factor) == ("mistral", factor)
    t = result.timing
    assert t.inference_ns > 0 and t.total_ns >= t.inference_ns


def test_defaults_are_the_first_compressor_its_factor_and_first_decoder(client, encoder):
    result = client.compress(TEXTS[:2])
    assert (result.model, result.decoder, result.pooling_factor) == ("arc-tiny", "llama", 8)
    expected = encoder.compress(TEXTS[:2], EncodeOptions(), decoder="llama")
    for got, want in zip(result.texts, expected, strict=True):
        assert np.abs(got.vectors - want.vectors).max() <= 1e-5


@pytest.mark.parametrize("dtype, torch_dtype, width", [("bfloat16", torch.bfloat16, 2),
                                                       ("float16", torch.float16, 2), ("float32", torch.float32, 4)])
def test_output_dtype_rounds_the_float32_result(client, stub, dtype, torch_dtype, width):
    full = client.compress(TEXTS, decoder="llama", dtype="float32")
    cast = client.compress(TEXTS, decoder="llama", dtype=dtype)
    for f, c in zip(full.texts, cast.texts, strict=True):
        rounded = torch.from_numpy(f.vectors).to(torch_dtype).float().numpy()
        np.testing.assert_array_equal(c.vectors, rounded)
        np.testing.assert_array_equal(c.continuation, torch.from_numpy(f.continuation).to(torch_dtype).float().numpy())
    if dtype != "float32":
        assert any(not np.array_equal(f.vectors, c.vectors) for f, c in zip(full.texts, cast.texts, strict=True))
    wire = {"bfloat16": pb.TENSOR_DTYPE_BFLOAT16, "float16": pb.TENSOR_DTYPE_FLOAT16,
            "float32": pb.TENSOR_DTYPE_FLOAT32}[dtype]
    raw = stub.Compress(pb.CompressRequest(texts=[CORPUS], dtype=wire)).texts[0]
    assert raw.vectors.dtype == wire and list(raw.vectors.shape) == [raw.m, DECODER_DIM]
    assert len(raw.vectors.data) == raw.m * DECODER_DIM * width
    assert list(raw.continuation.shape) == [DECODER_DIM] and raw.continuation_index == raw.m


def test_stream_answers_in_request_order(client):
    batches = [TEXTS[i:i + k] for i, k in [(0, 3), (2, 1), (1, 4), (4, 1), (0, 5)]]
    results = list(client.compress_stream(batches, pooling_factor=4, decoder="mistral"))
    assert [r.request_id for r in results] == [str(i) for i in range(len(batches))]
    for batch, result in zip(batches, results, strict=True):
        alone = client.compress(batch, pooling_factor=4, decoder="mistral")
        assert [t.num_tokens for t in result.texts] == [t.num_tokens for t in alone.texts]
        for a, b in zip(result.texts, alone.texts, strict=True):
            assert np.abs(a.vectors - b.vectors).max() <= 1e-5


def test_concurrent_requests_share_batches_without_mixing_results(client, encoder):
    requests = [(TEXTS[i % len(TEXTS):] or TEXTS, 4 if i % 2 else 8) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda r: client.compress(r[0], pooling_factor=r[1]), requests))
    for (texts, factor), result in zip(requests, results, strict=True):
        expected = encoder.compress(list(texts), EncodeOptions(), pooling_factor=factor)
        assert result.pooling_factor == factor
        for got, want in zip(result.texts, expected, strict=True):
            assert got.m == want.m and np.abs(got.vectors - want.vectors).max() <= 1e-5


def test_client_result_splices_into_a_decoder(client, tiny_arc_dir):
    decoder, tokenizer = tiny_llama_decoder(tiny_arc_dir)
    (compressed,) = client.compress([CORPUS * 2], decoder="llama").texts
    prompt = splice_compressed(decoder, tokenizer, [["Document: ", compressed, "\nAnswer:"]])
    assert prompt.compressed_positions.sum().item() == compressed.m + 1
    with torch.no_grad():
        out = decoder.generate(inputs_embeds=prompt.inputs_embeds, attention_mask=prompt.attention_mask,
                               max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert out.shape == (1, 3)


def _status(call):
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


@pytest.mark.parametrize("request_fields, code, message", [
    ({"model": "nope", "texts": ["x"]}, grpc.StatusCode.NOT_FOUND, "nope"),
    ({"model": "bm25", "texts": ["x"]}, grpc.StatusCode.INVALID_ARGUMENT, "Compress needs a compressor model"),
    ({"texts": ["x"], "decoder": "gpt"}, grpc.StatusCode.INVALID_ARGUMENT, "no decoder 'gpt'"),
    ({"texts": ["x"], "pooling_factor": 40_000}, grpc.StatusCode.INVALID_ARGUMENT, "pooling_factor=40000"),
    ({"texts": []}, grpc.StatusCode.INVALID_ARGUMENT, "texts is empty"),
    ({"texts": ["ok", "  "]}, grpc.StatusCode.INVALID_ARGUMENT, "texts[1] is empty"),
    ({"texts": ["x"], "dtype": 9}, grpc.StatusCode.INVALID_ARGUMENT, "unknown dtype value 9"),
    ({"texts": ["x"], "truncate": 7}, grpc.StatusCode.INVALID_ARGUMENT, "unknown truncate value 7"),
    ({"texts": ["A " * 33_000], "truncate": 2}, grpc.StatusCode.INVALID_ARGUMENT, "shorten it or allow truncation"),
])
def test_bad_input_statuses(stub, request_fields, code, message):
    got_code, details = _status(lambda: stub.Compress(pb.CompressRequest(**request_fields)))
    assert got_code == code and message in details, details


def test_bad_request_in_a_stream_fails_the_stream(stub):
    requests = [pb.CompressRequest(texts=["fine"]), pb.CompressRequest(texts=["x"], decoder="gpt")]
    got_code, details = _status(lambda: list(stub.CompressStream(iter(requests))))
    assert got_code == grpc.StatusCode.INVALID_ARGUMENT and "no decoder 'gpt'" in details


def test_embed_on_a_compressor_points_to_compress(client):
    got_code, details = _status(lambda: client.embed(["x"], model="arc-tiny"))
    assert got_code == grpc.StatusCode.INVALID_ARGUMENT and "use Compress" in details


def test_tensor_bytes_of_the_wrong_length_are_refused():
    from ferret.errors import InvalidArgument
    from ferret.tensors import WireDtype, decode, encode

    data = encode(np.ones((2, 3), np.float32), WireDtype.BFLOAT16)
    assert decode(data, WireDtype.BFLOAT16, (2, 3)).tolist() == [[1.0] * 3] * 2
    with pytest.raises(InvalidArgument, match=r"shape \[3, 3\] needs 18 bytes, got 12"):
        decode(data, WireDtype.BFLOAT16, (3, 3))
