"""Sharded search (in-process shards): merge then fuse equals the unsharded collection; shards down."""

import numpy as np
import pytest

from ferret.encoders.registry import ModelRegistry
from ferret.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from ferret.indexing.collection import CollectionManager, Query, SubSearch
from ferret.indexing.fusion import RRF, WeightedSum
from ferret.indexing.shards import ShardedSearch, ShardManifest, shard_of
from ferret.indexing.store import Document

SCHEMA = {
    "dense": [
        {"name": "a", "encoder": "precomputed", "dim": 8, "metric": "ip"},
        {"name": "b", "encoder": "precomputed", "dim": 8, "metric": "cosine"},
    ]
}
SHARDS = 3


class DownShard:
    def query_batch(self, queries):
        raise Unavailable("connection refused at 127.0.0.1:1")


def sharded_data(root, count, shards, seed):
    """Random documents in one unsharded data directory and in `shards` shard data directories;
    returns (unsharded manager, shard managers)."""
    rng = np.random.default_rng(seed)
    docs = [
        Document(f"d{i}", f"text {i}", {"even": i % 2 == 0},
                 {"a": rng.normal(size=8).astype(np.float32), "b": rng.normal(size=8).astype(np.float32)})
        for i in range(count)
    ]
    whole = CollectionManager(root / "whole", ModelRegistry({}))
    whole.create("c", SCHEMA).upsert(docs)
    parts = [CollectionManager(root / f"shard-{s}", ModelRegistry({})) for s in range(shards)]
    for s, manager in enumerate(parts):
        manager.create("c", SCHEMA).upsert([d for d in docs if shard_of(d.id, shards) == s])
    return whole, parts


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    whole, parts = sharded_data(tmp_path_factory.mktemp("c"), 400, SHARDS, seed=7)
    yield whole.get("c"), {f"shard-{s}": m.get("c") for s, m in enumerate(parts)}
    for manager in (whole, *parts):
        manager.close(snapshot=False)


def ranking(result):
    return [(round(h.score, 5), h.id) for h in result.hits]


def assert_same_up_to_ties(got, expected):
    """Same scores in order and same documents, except that documents tied with the page's first or last
    score may differ: ties are broken by id here and by insertion order in the unsharded collection."""
    got, expected = ranking(got), ranking(expected)
    assert [s for s, _ in got] == [s for s, _ in expected]
    edge = {got[0][0], got[-1][0]}
    assert sorted(x for x in got if x[0] not in edge) == sorted(x for x in expected if x[0] not in edge)


def assert_client_answers_like(client, whole):
    """A router's answers through `client` (a `ferret.client.Client`) equal those of the unsharded collection
    `whole` of `sharded_data`: two fusions with a filter and an offset, then one sub-search (ranks, scores)."""
    rng = np.random.default_rng(5)
    for fusion in (RRF(), WeightedSum("z-score")):
        searches = [SubSearch("a", vector=rng.normal(size=8), limit=40),
                    SubSearch("b", vector=rng.normal(size=8), limit=25, weight=0.7)]
        flt = {"must": [{"key": "even", "match": True}]}
        expected = whole.query(Query(searches, fusion=fusion, filter=flt, limit=10, offset=2, with_metadata=True))
        got = client.query("c", searches, fusion, filter=flt, limit=10, offset=2, with_metadata=True)
        assert_same_up_to_ties(got, expected)
        assert all(h.metadata == {"even": True} for h in got.hits)
    single = [SubSearch("a", vector=np.ones(8), limit=30)]
    expected = whole.query(Query(single, limit=15))
    got = client.query("c", single, limit=15)
    assert [(h.id, h.sources["a"].rank) for h in got.hits] == [(h.id, h.sources["a"].rank) for h in expected.hits]
    np.testing.assert_allclose([h.score for h in got.hits], [h.score for h in expected.hits], rtol=1e-6)


@pytest.mark.parametrize("fusion", [RRF(), RRF(k=2), WeightedSum("min-max"), WeightedSum("z-score")])
def test_merge_then_fuse_equals_the_unsharded_collection(collections, fusion):
    whole, shards = collections
    sharded = ShardedSearch(shards)
    rng = np.random.default_rng(1)
    for _ in range(5):
        query = Query(
            [SubSearch("a", vector=rng.normal(size=8), limit=30),
             SubSearch("b", vector=rng.normal(size=8), limit=20, weight=0.5)],
            fusion=fusion, limit=10, offset=3, with_metadata=True,
        )
        expected, got = whole.query(query), sharded.query(query)
        assert_same_up_to_ties(got, expected)
        assert not got.partial
        expected_hits = {h.id: h for h in expected.hits}
        for hit in got.hits:
            if hit.id in expected_hits:
                assert {n: s.rank for n, s in hit.sources.items()} == {
                    n: s.rank for n, s in expected_hits[hit.id].sources.items()
                }
                assert hit.metadata == expected_hits[hit.id].metadata


def test_single_search_with_filter_pages_like_the_unsharded_collection(collections):
    whole, shards = collections
    sharded = ShardedSearch(shards)
    query = Query([SubSearch("a", vector=np.ones(8), limit=50)], filter={"must": [{"key": "even", "match": True}]},
                  limit=7, offset=5)
    expected, got = whole.query(query), sharded.query(query)
    assert ranking(got) == ranking(expected)
    assert [h.sources["a"].rank for h in got.hits] == list(range(6, 13))


def test_a_shard_down_is_unavailable_naming_it_or_partial_when_allowed(collections):
    whole, shards = collections
    sharded = ShardedSearch({**shards, "shard-2": DownShard()})
    query = Query([SubSearch("a", vector=np.ones(8), limit=10)])
    with pytest.raises(Unavailable, match=r"1 of 3 shards unavailable \(shard shard-2: connection refused"):
        sharded.query(query)
    partial = sharded.query(query, allow_partial=True)
    assert partial.partial and partial.unavailable_shards == ["shard-2"]
    live = ShardedSearch({k: v for k, v in shards.items() if k != "shard-2"}).query(query)
    assert ranking(partial) == ranking(live)
    with pytest.raises(Unavailable, match="3 of 3"):
        ShardedSearch({n: DownShard() for n in shards}).query(query, allow_partial=True)


def test_bad_queries_and_manifests(collections, tmp_path):
    _, shards = collections
    with pytest.raises(InvalidArgument, match="at least one shard"):
        ShardedSearch({})
    with pytest.raises(InvalidArgument, match="limit must be"):
        ShardedSearch(shards).query(Query([SubSearch("a", vector=np.ones(8))], limit=0))
    with pytest.raises(NotFound, match="unknown field"):
        ShardedSearch(shards).query(Query([SubSearch("nope", vector=np.ones(8))]))
    (tmp_path / "shards.json").write_text("{not json")
    with pytest.raises(FailedPrecondition, match="not a shard manifest"):
        ShardManifest.load(tmp_path)
    assert ShardManifest.load(tmp_path / "missing") is None
