"""Compressed documents over gRPC: a collection with an ARC compressor, queried with `compressed_for` through a
real server configured by TOML; the hits' vectors splice into a decoder's prompt in one round trip."""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest
import torch

from ferret.client import Client, query_message
from ferret.encoders.base import EncodeOptions
from ferret.indexing.fields import SubSearch
from ferret.indexing.schema import CompressionOption
from ferret.proto.ferret.v1 import collections_pb2 as pb
from ferret.proto.ferret.v1 import collections_pb2_grpc as pb_grpc
from ferret.testing.random_arc import COMPRESSED_DOCUMENTS, DECODER_DIM

ARC = "arc-tiny"
FACTOR = 4
SCHEMA = {"sparse": [{"name": "bm25", "encoder": "bm25"}], "compression": {"encoder": ARC, "pooling_factor": FACTOR}}
TEXTS = COMPRESSED_DOCUMENTS


@pytest.fixture(scope="module")
def client(arc_server):
    with Client(arc_server.address) as client:
        client.create_collection("compressed", SCHEMA)
        client.upsert("compressed", [{"id": k, "text": t} for k, t in TEXTS.items()])
        client.create_collection("plain", {"sparse": [{"name": "bm25", "encoder": "bm25"}]})
        client.upsert("plain", [{"id": "a", "text": "Vaccines."}])
        yield client
        for name in ("compressed", "plain"):
            client.drop_collection(name)


@pytest.fixture(scope="module")
def search_stub(arc_server):
    with grpc.insecure_channel(arc_server.address) as channel:
        yield pb_grpc.SearchServiceStub(channel)


def bm25(text: str) -> list[SubSearch]:
    return [SubSearch("bm25", text=text)]


def test_collection_description_carries_the_compression(client):
    assert client.get_collection("compressed").schema.compression == CompressionOption(ARC, FACTOR)
    assert client.get_collection("plain").schema.compression is None
    defaulted = client.create_collection("defaulted", {**SCHEMA, "compression": {"encoder": ARC}})
    try:
        assert defaulted.schema.compression == CompressionOption(ARC, 8)  # the model's factor, resolved
        listed = {c.name: c.schema.compression for c in client.list_collections()}
        assert listed["defaulted"] == CompressionOption(ARC, 8) and listed["plain"] is None
    finally:
        client.drop_collection("defaulted")


@pytest.mark.parametrize("decoder", ["llama", "mistral"])
def test_hits_equal_the_in_process_compression_for_the_decoder(client, arc_encoder, decoder):
    result = client.query("compressed", bm25("influenza vaccination elderly encoder"), limit=4,
                          compressed_for=decoder)
    assert len(result.hits) >= 2 and result.hits[0].id == "scifact"
    for hit in result.hits:
        (want,) = arc_encoder.compress([TEXTS[hit.id]], EncodeOptions(), pooling_factor=FACTOR, decoder=decoder)
        got = hit.compressed
        assert got.decoder == decoder and got.pooling_factor == FACTOR
        assert got.vectors.dtype == np.float32 and got.vectors.shape == (want.m, DECODER_DIM)
        assert got.num_tokens == want.num_tokens and got.m == math.ceil(want.num_tokens / FACTOR)
        assert np.abs(got.vectors - want.vectors).max() <= 1e-5
        assert np.abs(got.continuation - arc_encoder.continuation(decoder)).max() <= 1e-5
    plain = client.query("compressed", bm25("influenza vaccination elderly encoder"), limit=4)
    assert [h.id for h in plain.hits] == [h.id for h in result.hits]
    assert all(h.compressed is None for h in plain.hits)


@pytest.mark.parametrize("dtype, width", [("bfloat16", 2), ("float16", 2), ("float32", 4)])
def test_wire_dtype_rounds_once(client, search_stub, dtype, width):
    exact = client.query("compressed", bm25("vaccines"), limit=1, compressed_for="llama").hits[0].compressed
    sent = client.query("compressed", bm25("vaccines"), limit=1, compressed_for="llama",
                        compressed_dtype=dtype).hits[0].compressed
    rounded = torch.from_numpy(exact.vectors).to(getattr(torch, dtype)).float().numpy()
    np.testing.assert_array_equal(sent.vectors, rounded)
    raw = search_stub.Query(query_message("compressed", bm25("vaccines"), limit=1, compressed_for="llama",
                                          compressed_dtype=dtype))
    tensor = raw.hits[0].compressed.vectors
    assert list(tensor.shape) == [exact.m, DECODER_DIM] and len(tensor.data) == exact.m * DECODER_DIM * width
    assert (raw.compressed_for, raw.pooling_factor) == ("llama", FACTOR)


def test_batch_query_carries_compressed_hits(client):
    queries = [query_message("compressed", bm25(q), limit=1, compressed_for=d)
               for q, d in (("influenza", "llama"), ("hidden size projector", "mistral"))]
    first, second = client.batch_query(queries)
    assert first.hits[0].id == "scifact" and first.hits[0].compressed.decoder == "llama"
    assert second.hits[0].id == "long" and second.hits[0].compressed.decoder == "mistral"


def test_bad_requests_have_their_status(client, search_stub):
    with pytest.raises(grpc.RpcError) as err:
        client.query("plain", bm25("vaccines"), compressed_for="llama")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "keeps no compressed documents" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        client.query("compressed", bm25("vaccines"), compressed_for="gpt")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "no decoder 'gpt'" in err.value.details()
    unknown_dtype = pb.QueryRequest(collection="compressed", searches=[pb.SubSearch(field="bm25", text="vaccines")],
                                    compressed_for="llama", compressed_dtype=7)
    with pytest.raises(grpc.RpcError) as err:
        search_stub.Query(unknown_dtype)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown dtype value 7" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:  # a compressor must be a compressor
        client.create_collection("wrong", {**SCHEMA, "compression": {"encoder": "bm25"}})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "name an ARC-Encoder" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        client.create_collection("wrong", {**SCHEMA, "compression": {"encoder": "arc-missing"}})
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "wrong" not in {c.name for c in client.list_collections()}
    assert client.count("compressed") == len(TEXTS)


def test_one_round_trip_retrieve_splice_generate(client, splice_and_generate):
    """Query with compressed_for (bfloat16 on the wire), splice the hit into a tiny Llama's inputs_embeds and
    generate: the document takes x times fewer prompt positions than its tokens."""
    (hit,) = client.query("compressed", bm25("encoder decoder hidden size projector"), limit=1,
                          compressed_for="llama", compressed_dtype="bfloat16", with_text=True).hits
    assert hit.id == "long"
    splice_and_generate(hit.compressed, hit.text, FACTOR)
