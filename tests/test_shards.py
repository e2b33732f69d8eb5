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
    ],
    "sparse": [{"name": "text", "encoder": "bm25"}],
}
BM25_FIELDS = frozenset({"text"})
SHARDS = 3
WORDS = [f"w{i}" for i in range(60)]
WORD_ODDS = 1 / np.arange(1, len(WORDS) + 1) / sum(1 / np.arange(1, len(WORDS) + 1))  # Zipf-like
BM25_QUERIES = ["w1 w5", "w2 w2 w17", "w40 w3", "w9", "w0 w7 w33 w58", "w59 w12"]


class DownShard:
    def query_batch(self, queries):
        raise Unavailable("connection refused at 127.0.0.1:1")

    def term_statistics(self, field, texts):
        raise Unavailable("connection refused at 127.0.0.1:1")


class CountingShard:
    """A collection that counts the calls of each phase."""

    def __init__(self, collection):
        self.collection, self.calls = collection, {"term_statistics": 0, "query_batch": 0}

    def query_batch(self, queries):
        self.calls["query_batch"] += 1
        return self.collection.query_batch(queries)

    def term_statistics(self, field, texts):
        self.calls["term_statistics"] += 1
        return self.collection.term_statistics(field, texts)


def random_text(rng) -> str:
    """Words of a Zipf-like vocabulary, 1 to 60 of them: shards get different N, df and avgdl."""
    return " ".join(rng.choice(WORDS, size=rng.integers(1, 61), p=WORD_ODDS))


def doc_id(i: int) -> str:
    return f"d{i:04d}"


def sharded_data(root, count, shards, seed):
    """Random documents in one unsharded data directory and in `shards` shard data directories;
    returns (unsharded manager, shard managers). Ids sort in insertion order, so that ties (frequent in
    BM25 over a small vocabulary) break alike in the merge (by id) and in the unsharded collection."""
    rng = np.random.default_rng(seed)
    docs = [
        Document(doc_id(i), random_text(rng), {"even": i % 2 == 0},
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


def assert_same_hits(got, expected):
    """The same documents in the same order (ids sort in insertion order, so ties break alike), with the same
    ranks per source, and scores equal within float32 rounding (the wire carries float32)."""
    assert [h.id for h in got.hits] == [h.id for h in expected.hits]
    np.testing.assert_allclose([h.score for h in got.hits], [h.score for h in expected.hits], rtol=1e-6)
    for hit, want in zip(got.hits, expected.hits, strict=True):
        assert {n: s.rank for n, s in hit.sources.items()} == {n: s.rank for n, s in want.sources.items()}
        for name, source in want.sources.items():
            assert hit.sources[name].score == pytest.approx(source.score, rel=1e-6)


def bm25_queries(rng):
    """BM25 alone and fused with a dense sub-search (by rank, and by min-max normalised score)."""
    for text in BM25_QUERIES:
        yield Query([SubSearch("text", text=text, limit=10)], limit=10)
        vector = rng.normal(size=8)
        for fusion in (RRF(), WeightedSum("min-max")):
            yield Query([SubSearch("text", text=text, limit=40), SubSearch("a", vector=vector, limit=40)],
                        fusion=fusion, limit=10)


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
    sharded = ShardedSearch(shards, bm25_fields=BM25_FIELDS)
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
    sharded = ShardedSearch(shards, bm25_fields=BM25_FIELDS)
    query = Query([SubSearch("a", vector=np.ones(8), limit=50)], filter={"must": [{"key": "even", "match": True}]},
                  limit=7, offset=5)
    expected, got = whole.query(query), sharded.query(query)
    assert ranking(got) == ranking(expected)
    assert [h.sources["a"].rank for h in got.hits] == list(range(6, 13))


def test_a_shard_down_is_unavailable_naming_it_or_partial_when_allowed(collections):
    whole, shards = collections
    sharded = ShardedSearch({**shards, "shard-2": DownShard()}, bm25_fields=BM25_FIELDS)
    query = Query([SubSearch("a", vector=np.ones(8), limit=10)])
    with pytest.raises(Unavailable, match=r"1 of 3 shards unavailable \(shard shard-2: connection refused"):
        sharded.query(query)
    partial = sharded.query(query, allow_partial=True)
    assert partial.partial and partial.unavailable_shards == ["shard-2"]
    live = ShardedSearch({k: v for k, v in shards.items() if k != "shard-2"}, bm25_fields=BM25_FIELDS).query(query)
    assert ranking(partial) == ranking(live)
    with pytest.raises(Unavailable, match="3 of 3"):
        ShardedSearch({n: DownShard() for n in shards}, bm25_fields=BM25_FIELDS).query(query, allow_partial=True)


def test_sharded_bm25_equals_the_unsharded_collection(collections):
    whole, shards = collections
    sharded = ShardedSearch(shards, bm25_fields=BM25_FIELDS)
    for query in bm25_queries(np.random.default_rng(2)):
        expected, got = whole.query(query), sharded.query(query)
        assert len(expected.hits) == 10
        assert_same_hits(got, expected)
    statistics = sharded.term_statistics("text", BM25_QUERIES)
    assert statistics == whole.term_statistics("text", BM25_QUERIES)
    assert statistics.documents == 400 and set(statistics.df) <= set(WORDS)


def test_sharded_bm25_after_deletes_on_a_shard(tmp_path):
    whole_manager, parts = sharded_data(tmp_path, 200, SHARDS, seed=11)
    try:
        whole = whole_manager.get("c")
        shards = {f"shard-{s}": m.get("c") for s, m in enumerate(parts)}
        # Most deletes on one shard, so its statistics move away from the others'.
        doomed = [d for d in map(doc_id, range(200)) if shard_of(d, SHARDS) == 1][:40] + [doc_id(0), doc_id(3)]
        whole.delete(doomed)
        for s, part in enumerate(parts):
            part.get("c").delete([d for d in doomed if shard_of(d, SHARDS) == s])
        sharded = ShardedSearch(shards, bm25_fields=BM25_FIELDS)
        for query in bm25_queries(np.random.default_rng(4)):
            got = sharded.query(query)
            assert_same_hits(got, whole.query(query))
            assert not {h.id for h in got.hits} & set(doomed)
    finally:
        for manager in (whole_manager, *parts):
            manager.close(snapshot=False)


def test_statistics_take_a_second_round_trip_only_for_bm25_text_searches(collections):
    whole, shards = collections
    counting = {name: CountingShard(c) for name, c in shards.items()}
    sharded = ShardedSearch(counting, bm25_fields=BM25_FIELDS)

    def calls():
        totals = {"term_statistics": 0, "query_batch": 0}
        for shard in counting.values():
            for phase, n in shard.calls.items():
                totals[phase] += n
            shard.calls = dict.fromkeys(shard.calls, 0)
        return totals

    sharded.query(Query([SubSearch("a", vector=np.ones(8)), SubSearch("b", vector=np.ones(8))]))
    assert calls() == {"term_statistics": 0, "query_batch": SHARDS}
    sharded.query(Query([SubSearch("text", text="w1 w2"), SubSearch("a", vector=np.ones(8))]))
    assert calls() == {"term_statistics": SHARDS, "query_batch": SHARDS}
    # Statistics the caller sends are used as they are: no gathering.
    given = whole.term_statistics("text", ["w1 w2"])
    query = Query([SubSearch("text", text="w1 w2", limit=10, statistics=given)])
    assert_same_hits(sharded.query(query), whole.query(query))
    assert calls() == {"term_statistics": 0, "query_batch": SHARDS}


def test_a_shard_down_while_gathering_statistics(collections):
    _, shards = collections
    query = Query([SubSearch("text", text="w3 w8", limit=20), SubSearch("a", vector=np.ones(8), limit=20)])
    flaky = CountingShard(shards["shard-1"])
    flaky.term_statistics = DownShard().term_statistics  # down for the statistics, back for the search
    down = {**shards, "shard-1": flaky}
    with pytest.raises(Unavailable, match=r"1 of 3 shards unavailable \(shard shard-1: connection refused"):
        ShardedSearch(down, bm25_fields=BM25_FIELDS).query(query)
    partial = ShardedSearch(down, bm25_fields=BM25_FIELDS).query(query, allow_partial=True)
    assert partial.unavailable_shards == ["shard-1"] and flaky.calls["query_batch"] == 0
    assert partial.hits and all(shard_of(h.id, SHARDS) != 1 for h in partial.hits)
    # The statistics of the shards that answered, as if the collection were those shards alone.
    live = {name: c for name, c in shards.items() if name != "shard-1"}
    assert_same_hits(partial, ShardedSearch(live, bm25_fields=BM25_FIELDS).query(query))
    with pytest.raises(Unavailable, match="3 of 3"):
        ShardedSearch({n: DownShard() for n in shards}, bm25_fields=BM25_FIELDS).query(query, allow_partial=True)


def test_statistics_are_for_bm25_fields_only(collections):
    whole, _ = collections
    with pytest.raises(InvalidArgument, match=r"term statistics exist only for BM25 fields; 'a' is a dense field"):
        whole.term_statistics("a", ["w1"])
    with pytest.raises(NotFound, match="unknown field 'nope'"):
        whole.term_statistics("nope", ["w1"])
    with pytest.raises(InvalidArgument, match=r"1\.\.1024 query texts, got 0"):
        whole.term_statistics("text", [])
    statistics = whole.term_statistics("text", ["w1"])
    with pytest.raises(InvalidArgument, match="sub-search 'b': term statistics exist only for BM25 fields"):
        whole.query(Query([SubSearch("b", vector=np.ones(8), statistics=statistics)]))


def test_bad_queries_and_manifests(collections, tmp_path):
    _, shards = collections
    with pytest.raises(InvalidArgument, match="at least one shard"):
        ShardedSearch({}, bm25_fields=BM25_FIELDS)
    with pytest.raises(InvalidArgument, match="limit must be"):
        ShardedSearch(shards, bm25_fields=BM25_FIELDS).query(Query([SubSearch("a", vector=np.ones(8))], limit=0))
    with pytest.raises(NotFound, match="unknown field"):
        ShardedSearch(shards, bm25_fields=BM25_FIELDS).query(Query([SubSearch("nope", vector=np.ones(8))]))
    (tmp_path / "shards.json").write_text("{not json")
    with pytest.raises(FailedPrecondition, match="not a shard manifest"):
        ShardManifest.load(tmp_path)
    assert ShardManifest.load(tmp_path / "missing") is None
