"""Ray build vs local build of the same corpus (real MiniLM on a SciFact slice), resume, refusals."""

import gzip
import json

import numpy as np
import pytest
from conftest import require_dataset

from ferret.encoders.registry import DEFAULT_MODELS
from ferret.errors import FailedPrecondition, InvalidArgument
from ferret.indexing.build import build_collection
from ferret.indexing.collection import CollectionManager, Query, SubSearch
from ferret.indexing.shards import ShardedSearch, ShardManifest, open_local_shards

ray = pytest.importorskip("ray")
from ferret.distributed.build import build_sharded_collection  # noqa: E402

SCHEMA = {
    "dense": [{"name": "emb", "encoder": "all-MiniLM-L6-v2"}],
    "sparse": [{"name": "bm25", "encoder": "bm25"}],
}
DOCS = 120


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024 * 1024)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = require_dataset("beir/scifact")
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as src, open(path, "w") as out:
        for _, line in zip(range(DOCS), src, strict=False):
            out.write(line)
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for _, line in zip(range(10), f, strict=False)]
    return path, queries


@pytest.fixture(scope="module")
def builds(ray_cluster, corpus, minilm_registry, tmp_path_factory):
    path, _ = corpus
    local_dir, ray_dir = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("sharded")
    build_collection(path, local_dir, "c", SCHEMA, minilm_registry, batch_size=64, progress=False)
    report = build_sharded_collection(
        path, ray_dir, "c", SCHEMA, DEFAULT_MODELS,
        shards=2, workers=2, cpus_per_worker=0.5, batch_size=64, progress=False,
    )
    return local_dir, ray_dir, report


def test_ray_build_returns_the_local_builds_top10(builds, corpus, minilm_registry):
    local_dir, ray_dir, report = builds
    assert (report.shards, report.documents, report.added) == (2, DOCS, DOCS)
    local = CollectionManager(local_dir, minilm_registry)
    manifest, managers = open_local_shards(ray_dir, minilm_registry)
    try:
        assert manifest.complete and len(managers) == 2
        counts = [m.get("c").count() for m in managers]
        assert sum(counts) == DOCS and min(counts) > DOCS // 4  # both shards hold a fair part
        shards = {f"s{i}": m.get("c") for i, m in enumerate(managers)}
        sharded = ShardedSearch(shards, bm25_fields=shards["s0"].schema.bm25_fields)
        for text in corpus[1]:
            for field in ("emb", "bm25"):
                query = Query([SubSearch(field, text=text, limit=10)])
                expected, got = local.get("c").query(query), sharded.query(query)
                assert [h.id for h in got.hits] == [h.id for h in expected.hits]
                np.testing.assert_allclose([h.score for h in got.hits], [h.score for h in expected.hits], rtol=1e-5)
    finally:
        local.close(snapshot=False)
        for m in managers:
            m.close(snapshot=False)


def test_rerun_is_a_noop_and_an_interrupted_build_resumes(builds, corpus):
    _, ray_dir, _ = builds
    again = build_sharded_collection(corpus[0], ray_dir, "c", SCHEMA, DEFAULT_MODELS, shards=2, progress=False)
    assert (again.added, again.documents) == (0, DOCS)
    # An interrupted build: the manifest is not complete and shard 0 lacks some documents.
    manifest = ShardManifest.load(ray_dir)
    manifest.complete = False
    manifest.save(ray_dir)
    from ferret.encoders.registry import ModelRegistry

    shard = CollectionManager(manifest.directories(ray_dir)[0], ModelRegistry({}))
    lost = [d.id for d in shard.store.live_documents("c", 5).__next__()]
    shard.get("c").delete(lost)
    shard.close()
    resumed = build_sharded_collection(
        corpus[0], ray_dir, "c", SCHEMA, DEFAULT_MODELS, shards=2, workers=1, batch_size=64, progress=False
    )
    assert (resumed.added, resumed.documents) == (len(lost), DOCS)
    assert ShardManifest.load(ray_dir).complete


def test_another_corpus_or_shard_count_is_refused(builds, corpus, tmp_path):
    _, ray_dir, _ = builds
    with pytest.raises(FailedPrecondition, match="remove the folder"):
        build_sharded_collection(corpus[0], ray_dir, "c", SCHEMA, DEFAULT_MODELS, shards=3, progress=False)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"_id": "x", "text": "y"}) + "\n")
    with pytest.raises(FailedPrecondition, match="remove the folder"):
        build_sharded_collection(other, ray_dir, "c", SCHEMA, DEFAULT_MODELS, shards=2, progress=False)


def test_encoder_workers_read_jsonl_lines_and_parquet_rows(tmp_path):
    import pyarrow as pa

    from ferret.distributed.build import EncodeWorker
    from ferret.indexing.schema import CollectionSchema

    schema = CollectionSchema.from_dict({"dense": [{"name": "v", "encoder": "precomputed", "dim": 2}]})
    record = {"_id": "a", "title": "T", "text": "body", "metadata": {"k": 1}, "vectors": {"v": [1.0, 0.0]}}
    lines = pa.table({"text": [json.dumps(record), "  "]})
    jsonl = EncodeWorker([], schema, [], str(tmp_path / "c.jsonl"), resuming=False)._documents(lines)
    parquet = EncodeWorker([], schema, [], str(tmp_path / "c.parquet"), resuming=False)._documents(
        pa.Table.from_pylist([record])
    )
    for documents in (jsonl, parquet):
        assert [(d.id, d.text, d.metadata, d.vectors) for d in documents] == [
            ("a", "T body", {"k": 1, "title": "T"}, {"v": [1.0, 0.0]})
        ]
    with pytest.raises(InvalidArgument, match="not JSON"):
        EncodeWorker([], schema, [], "c.jsonl", resuming=False)._documents(pa.table({"text": ["{bad"]}))
