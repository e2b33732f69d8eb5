"""Sharded serving on loopback: 2 `ferret serve` shard processes + a router vs the unsharded collection."""

import grpc
import numpy as np
import pytest
from conftest import shard_servers
from test_shards import assert_client_answers_like

from ferret.client import Client, query_message
from ferret.indexing.collection import SubSearch
from ferret.indexing.shards import shard_of
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
