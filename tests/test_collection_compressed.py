"""Collections with compressed documents: the ARC representation kept per document and returned with hits."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pytest

from ferret.encoders.base import EncodeOptions
from ferret.encoders.registry import ModelConfig, ModelRegistry
from ferret.errors import DataLoss, FailedPrecondition, InvalidArgument, NotFound
from ferret.indexing.collection import CollectionManager, Query, SubSearch
from ferret.indexing.schema import COMPRESSED_FIELD
from ferret.indexing.store import Document, unpack_compressed
from ferret.testing.random_arc import COMPRESSED_DOCUMENTS, CORPUS, DECODER_DIM

ARC = "arc-tiny"
FACTOR = 4
SCHEMA = {"sparse": [{"name": "bm25", "encoder": "bm25"}], "compression": {"encoder": ARC, "pooling_factor": FACTOR}}
TEXTS = COMPRESSED_DOCUMENTS


@pytest.fixture(scope="module")
def registry(tiny_arc_dir):
    return ModelRegistry.from_configs([ModelConfig(ARC, "arc-encoder", str(tiny_arc_dir),
                                                   {"decoders": ["llama", "mistral"], "device": "cpu"})])


@pytest.fixture
def manager(tmp_path, registry):
    m = CollectionManager(tmp_path / "data", registry)
    m.create("docs", SCHEMA).upsert([Document(k, t) for k, t in TEXTS.items()])
    yield m
    m.close(snapshot=False)


def bm25_query(text: str, **kw) -> Query:
    return Query([SubSearch("bm25", text=text)], **kw)


def test_store_keeps_the_encoder_space_representation(manager, registry):
    encoder = registry.get(ARC)
    docs = manager.get("docs")
    assert docs.schema.compression.pooling_factor == FACTOR
    expected = encoder.compress(list(TEXTS.values()), EncodeOptions(), pooling_factor=FACTOR, project=False)
    stored = docs.get(list(TEXTS), with_vectors=True)
    for doc, want in zip(stored, expected, strict=True):
        kept = doc.vectors[COMPRESSED_FIELD]
        assert kept.decoder is None and kept.continuation is None
        assert kept.vectors.shape == (math.ceil(kept.num_tokens / FACTOR), 64) and kept.pooling_factor == FACTOR
        assert kept.num_tokens == want.num_tokens
        np.testing.assert_array_equal(kept.vectors, want.vectors)


def test_default_pooling_factor_is_the_models(tmp_path, registry):
    m = CollectionManager(tmp_path / "d", registry)
    docs = m.create("docs", {**SCHEMA, "compression": {"encoder": ARC}})
    assert docs.schema.compression.pooling_factor == 8
    docs.upsert([Document("long", CORPUS)])
    (kept,) = docs.get(["long"], with_vectors=True)
    assert kept.vectors[COMPRESSED_FIELD].m == math.ceil(kept.vectors[COMPRESSED_FIELD].num_tokens / 8)
    m.close(snapshot=False)


@pytest.mark.parametrize("decoder", ["llama", "mistral"])
def test_hits_come_back_projected_for_the_named_decoder(manager, registry, decoder):
    encoder = registry.get(ARC)
    result = manager.get("docs").query(bm25_query("influenza vaccination elderly", limit=3, compressed_for=decoder))
    assert result.hits and result.hits[0].id == "scifact"
    for hit in result.hits:
        (want,) = encoder.compress([TEXTS[hit.id]], EncodeOptions(), pooling_factor=FACTOR, decoder=decoder)
        got = hit.compressed
        assert got.decoder == decoder and got.vectors.shape == (want.m, DECODER_DIM)
        assert got.num_tokens == want.num_tokens and got.pooling_factor == FACTOR
        assert np.abs(got.vectors - want.vectors).max() <= 1e-5
        np.testing.assert_array_equal(got.continuation, encoder.continuation(decoder))
    plain = manager.get("docs").query(bm25_query("influenza vaccination elderly", limit=3))
    assert [h.id for h in plain.hits] == [h.id for h in result.hits]
    assert all(h.compressed is None for h in plain.hits)


def test_replacement_recompresses_and_survives_restart(tmp_path, registry):
    m = CollectionManager(tmp_path / "d", registry)
    m.create("docs", SCHEMA).upsert([Document(k, t) for k, t in TEXTS.items()])
    replacement = "Mitochondria. " + CORPUS * 2
    m.get("docs").upsert([Document("short", replacement)])
    m.close()
    m = CollectionManager(tmp_path / "d", registry)
    (hit,) = m.get("docs").query(bm25_query("mitochondria", limit=1, compressed_for="llama")).hits
    assert hit.id == "short"
    (want,) = registry.get(ARC).compress([replacement], EncodeOptions(), pooling_factor=FACTOR, decoder="llama")
    assert hit.compressed.num_tokens == want.num_tokens
    assert np.abs(hit.compressed.vectors - want.vectors).max() <= 1e-5
    m.close(snapshot=False)


def test_bad_requests(manager, tmp_path, registry):
    docs = manager.get("docs")
    with pytest.raises(InvalidArgument, match="no decoder 'gpt'"):
        docs.query(bm25_query("vaccines", compressed_for="gpt"))
    with pytest.raises(InvalidArgument, match=r"documents \['blank'\] have no text"):
        docs.upsert([Document("fine", "Some text."), Document("blank", "  ")])
    with pytest.raises(InvalidArgument, match="computed by the collection"):
        docs.upsert([Document("mine", "Text.", vectors={COMPRESSED_FIELD: np.zeros((1, 64), np.float32)})])
    assert docs.count() == len(TEXTS)  # rejected batches wrote nothing

    plain = manager.create("plain", {"sparse": [{"name": "bm25", "encoder": "bm25"}]})
    plain.upsert([Document("a", "Vaccines.")])
    with pytest.raises(FailedPrecondition, match="keeps no compressed documents"):
        plain.query(bm25_query("vaccines", compressed_for="llama"))
    with pytest.raises(NotFound):
        manager.create("x", {**SCHEMA, "compression": {"encoder": "missing"}})
    with pytest.raises(InvalidArgument, match="pooling_factor must be a positive integer"):
        manager.create("x", {**SCHEMA, "compression": {"encoder": ARC, "pooling_factor": -2}})
    with pytest.raises(InvalidArgument, match="bad field definition"):
        manager.create("x", {**SCHEMA, "compression": {"encoder": ARC, "rate": 8}})


def test_other_compressor_is_failed_precondition(tmp_path, registry):
    m = CollectionManager(tmp_path / "d", registry)
    m.create("docs", SCHEMA).upsert([Document(k, t) for k, t in TEXTS.items()])
    m.close(snapshot=False)
    impostor = copy.copy(registry.get(ARC))
    impostor.info = replace(impostor.info, extra={**impostor.info.extra, "encoder_dimension": "128"})
    m = CollectionManager(tmp_path / "d", ModelRegistry({ARC: impostor}))
    docs = m.get("docs")
    with pytest.raises(FailedPrecondition, match="compression was indexed with encoder"):
        docs.query(bm25_query("vaccines", compressed_for="llama"))
    with pytest.raises(FailedPrecondition):
        docs.upsert([Document("new", "More text.")])
    assert [h.id for h in docs.query(bm25_query("influenza vaccination", limit=1)).hits] == ["scifact"]
    m.close(snapshot=False)


def test_a_damaged_stored_representation_is_data_loss():
    with pytest.raises(DataLoss, match="has 20 bytes"):
        unpack_compressed(np.array([9, 4, 3, 2], "<u4").tobytes() + b"\0" * 4)


def test_acceptance_retrieve_splice_generate(manager, splice_and_generate):
    """Retrieve with compressed vectors, splice them into a decoder's inputs_embeds, generate; the document
    takes x times fewer prompt positions than its tokens."""
    (hit,) = manager.get("docs").query(bm25_query("encoder decoder hidden size projector", limit=1,
                                                  compressed_for="llama", with_text=True)).hits
    assert hit.id == "long"
    splice_and_generate(hit.compressed, hit.text, FACTOR)
