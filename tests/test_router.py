"""Sharded serving on loopback: 2 `ferret serve` shard processes + a router vs the unsharded collection."""

import grpc
import numpy as np
import pytest
from conftest import shard_servers
from test_shards import (
    BM25_QUERIES,
    assert_client_answers_like,
    assert_same_hits,
    bm25_queries,
    doc_id,
    random_text,
)

from ferret.client import Client, query_message
from ferret.indexing.bm25 import TermStatistics
from ferret.indexing.collection import Query, SubSearch
from ferret.indexing.shards import shard_of
from ferret.proto.ferret.v1 import collections_pb2 as cpb
from ferret.proto.ferret.v1 import collections_pb2_grpc as cpb_grpc
from ferret.server.app import ServerThread
from ferret.server.config import ConfigError, parse_config
from ferret.server.router_service import ROUTER_SERVICE_MODULES, router_settings

BM25_ONLY = {"bm25": {"family": "bm25"}}  # no dense model to load: the vectors are precomputed


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with shard_servers(tmp_path_factory.mktemp("router")) as (whole, processes, addresses):
        router = ServerThread(parse_config({
            "server": {"host": "127.0.0.1", "port": 0, "json_logs": False},
            "models": BM25_ONLY,
            "router": {"shards": addresses, "timeout_s": 10},
        }), ROUTER_SERVICE_MODULES).start()
        try:
            router.wait_ready()
            with Client(router.address) as client:
                yield whole, client, processes, addresses, router
        finally:
            router.stop(grace=1)


def test_router_answers_like_the_unsharded_collection(cluster):
    whole, client, *_ = cluster
    assert_client_answers_like(client, whole)


def test_shard_errors_keep_their_status(cluster):
    _, client, *_ = cluster
    with pytest.raises(grpc.RpcError) as caught:
        client.query("nope", [SubSearch("a", vector=np.ones(8))])
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        client.query("c", [SubSearch("a", vector=np.ones(3))])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_router_bm25_equals_the_unsharded_collection(cluster):
    whole, client, *_ = cluster
    for query in bm25_queries(np.random.default_rng(8)):
        got = client.query("c", query.searches, query.fusion, limit=query.limit)
        assert_same_hits(got, whole.query(query))
    flt = {"must": [{"key": "even", "match": True}]}
    searches = [SubSearch("text", text="w4 w11", limit=50)]
    got = client.query("c", searches, filter=flt, limit=10, offset=5)
    assert_same_hits(got, whole.query(Query(searches, filter=flt, limit=10, offset=5)))
    # The router's TermStatistics is the sum over its shards: the unsharded collection's.
    assert client.term_statistics("c", "text", BM25_QUERIES) == whole.term_statistics("text", BM25_QUERIES)


def test_router_bm25_after_deletes_on_a_shard(cluster):
    whole, client, _, addresses, _ = cluster
    doomed = [doc_id(i) for i in range(0, 300, 4) if shard_of(doc_id(i), 2) == 1]
    with Client(addresses[1]) as shard:
        assert shard.delete("c", doomed).count == len(doomed)
    whole.delete(doomed)
    for query in bm25_queries(np.random.default_rng(9)):
        got = client.query("c", query.searches, query.fusion, limit=query.limit)
        assert_same_hits(got, whole.query(query))
        assert not {h.id for h in got.hits} & set(doomed)


def test_term_statistics_rpc_validates_its_input(cluster):
    whole, client, _, addresses, _ = cluster
    with Client(addresses[0]) as shard:
        for c in (shard, client):  # a shard process, and the router in front of both
            error = rpc_error(c.term_statistics, "nope", "text", ["w1"])
            assert error.code() == grpc.StatusCode.NOT_FOUND and "'nope' does not exist" in error.details()
            error = rpc_error(c.term_statistics, "c", "a", ["w1"])
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "only for BM25 fields; 'a' is a dense field" in error.details()
            error = rpc_error(c.term_statistics, "c", "text", [])
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "1..1024 query texts" in error.details()
        own = shard.term_statistics("c", "text", ["w1 w1 w2", "zzz"])
        assert set(own.df) == {"w1", "w2"} and 0 < own.documents < 300 and own.tokens > own.documents


@pytest.mark.parametrize(
    ("statistics", "message"),
    [
        (cpb.TermStatistics(documents=3, tokens=10, df={"w1": 4}), "df of 'w1' is 4 but there are only 3 documents"),
        (cpb.TermStatistics(documents=0, tokens=0, df={"w1": 1}), "df of 'w1' is 1 but there are only 0"),
        (cpb.TermStatistics(documents=5, tokens=2), "2 tokens in 5 documents is impossible"),
        (cpb.TermStatistics(documents=0, tokens=9), "9 tokens in 0 documents is impossible"),
    ],
)
def test_inconsistent_statistics_are_invalid_argument(cluster, statistics, message):
    _, client, _, addresses, _ = cluster
    request = query_message("c", [SubSearch("text", text="w1")])
    request.searches[0].statistics.CopyFrom(statistics)
    with Client(addresses[0]) as shard:
        for c in (shard, client):  # the router passes statistics the caller sent on to the shards
            error = rpc_error(c.batch_query, [request])
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"sub-search 0 ('text'): term statistics: {message}" in error.details()


def test_statistics_on_a_field_that_is_not_bm25_are_invalid_argument(cluster):
    _, client, *_ = cluster
    statistics = TermStatistics(10, 20, {"w1": 2})
    error = rpc_error(client.query, "c", [SubSearch("a", vector=np.ones(8), statistics=statistics)])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sub-search 'a': term statistics exist only for BM25 fields" in error.details()


def test_router_notices_a_field_that_changed_kind_behind_an_alias(cluster):
    """The router keeps which fields are BM25; after an alias moves to a collection where they differ, the
    shards refuse the stale expectation and the router reloads the schema and retries."""
    _, client, _, addresses, _ = cluster
    rng = np.random.default_rng(6)
    docs = [{"id": f"x{i:03d}", "text": random_text(rng)} for i in range(120)]
    shards = [Client(a) for a in addresses]
    try:
        for s, shard in enumerate(shards):
            shard.create_collection("lexical", {"sparse": [{"name": "a", "encoder": "bm25"}]})
            shard.upsert("lexical", [d for d in docs if shard_of(d["id"], 2) == s])
            shard.update_aliases({"live": "c"})
        searches = [SubSearch("a", text="w2 w9", limit=10)]
        error = rpc_error(client.query, "live", searches)  # "a" of "c" is dense: the router keeps that
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "precomputed vectors" in error.details()
        for shard in shards:
            shard.update_aliases({"live": "lexical"})
        got = client.query("live", searches)
        expected = client.query("lexical", searches)
        assert [(h.id, h.score) for h in got.hits] == [(h.id, h.score) for h in expected.hits] and got.hits
        assert {h.id for h in got.hits} <= {d["id"] for d in docs}
        for shard in shards:
            shard.update_aliases({"live": "c"})
        # Now the router expects BM25 and "a" is dense again: the shards' answer is about the field as it is.
        error = rpc_error(client.query, "live", searches)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "precomputed vectors" in error.details()
    finally:
        for shard in shards:
            shard.update_aliases(delete_aliases=["live"])
            shard.drop_collection("lexical")
            shard.close()


def test_a_shard_down_is_unavailable_naming_it_or_partial_when_allowed(cluster):
    whole, client, processes, addresses, router = cluster
    processes[1].terminate()
    processes[1].wait(timeout=30)
    searches = [SubSearch("a", vector=np.ones(8), limit=10)]
    with pytest.raises(grpc.RpcError) as caught:
        client.query("c", searches)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"shard-001 ({addresses[1]})" in caught.value.details()
    request = query_message("c", searches, limit=10)
    request.allow_partial = True
    with grpc.insecure_channel(router.address) as channel:
        response = cpb_grpc.SearchServiceStub(channel).Query(request, timeout=30)
    assert list(response.unavailable_shards) == [f"shard-001 ({addresses[1]})"]
    assert response.hits and all(shard_of(h.id, 2) == 0 for h in response.hits)


def test_router_config_is_validated():
    assert router_settings({}) is None
    for bad in ({"shards": []}, {"shards": ["a:1"], "timeout_s": 0}, {"shards": ["a:1"], "port": 1}):
        with pytest.raises(ConfigError, match=r"\[router\]"):
            router_settings({"router": bad})
