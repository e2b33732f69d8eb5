"""Sharded serving on loopback: 2 `ferret serve` shard processes + a router vs the unsharded collection."""

import socket
import subprocess
import sys

import grpc
import numpy as np
import pytest
from test_shards import assert_same_up_to_ties, sharded_data

from ferret.client import Client, query_message
from ferret.indexing.collection import Query, SubSearch
from ferret.indexing.fusion import RRF, WeightedSum
from ferret.indexing.shards import shard_of
from ferret.proto.ferret.v1 import collections_pb2_grpc as cpb_grpc
from ferret.server.app import ServerThread
from ferret.server.config import ConfigError, parse_config
from ferret.server.router_service import ROUTER_SERVICE_MODULES, router_settings

BM25_ONLY = {"bm25": {"family": "bm25"}}  # no dense model to load: the vectors are precomputed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("router")
    whole, shards = sharded_data(root, 300, 2, seed=3)
    processes, addresses = [], []
    for s, shard in enumerate(shards):
        shard.close()  # the shard processes open these data directories
        port = free_port()
        config = root / f"shard-{s}.toml"
        config.write_text(f'[server]\nhost = "127.0.0.1"\nport = {port}\ndata_dir = "{root / f"shard-{s}"}"\n'
                          'json_logs = false\n[models.bm25]\nfamily = "bm25"\n')
        processes.append(subprocess.Popen([sys.executable, "-m", "ferret.cli", "serve", "--config", str(config)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        addresses.append(f"127.0.0.1:{port}")
    router = ServerThread(parse_config({
        "server": {"host": "127.0.0.1", "port": 0, "json_logs": False},
        "models": BM25_ONLY,
        "router": {"shards": addresses, "timeout_s": 10},
    }), ROUTER_SERVICE_MODULES).start()
    try:
        router.wait_ready()
        for address in addresses:
            with Client(address) as c:
                c.wait_ready(timeout=180)
        with Client(router.address) as client:
            yield whole.get("c"), client, processes, addresses, router
    finally:
        router.stop(grace=1)
        for p in processes:
            p.terminate()
            p.wait(timeout=30)
        whole.close(snapshot=False)


def test_router_answers_like_the_unsharded_collection(cluster):
    whole, client, *_ = cluster
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
