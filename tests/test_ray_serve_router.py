"""The shard router on Ray Serve: 2 `ferret serve` shard processes, the router deployed with 2 replicas behind
Ray Serve's gRPC proxy, queried through `ferret.client` and compared with the unsharded collection (as
tests/test_router.py does for the plain router process); Ferret's statuses must reach the client unchanged."""

import sys
import urllib.request
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
from conftest import free_port, shard_servers, start_local_ray
from test_shards import BM25_QUERIES, assert_client_answers_like, assert_same_hits, bm25_queries

from ferret import cli
from ferret.client import Client, query_message
from ferret.distributed.serve import SEARCH_RPCS, RouterReplica, deploy_router, ingress_settings, ray_serve_settings
from ferret.errors import FailedPrecondition
from ferret.indexing.collection import Query, SubSearch
from ferret.indexing.shards import shard_of
from ferret.proto.ferret.v1 import collections_pb2 as cpb
from ferret.proto.ferret.v1 import collections_pb2_grpc as cpb_grpc
from ferret.server.config import ConfigError, parse_config
from ferret.server.router_service import Router, RouterSettings

API_KEY = "ray-secret"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    ray = pytest.importorskip("ray")  # here, not at import: the config and CLI tests below run without Ray
    serve = pytest.importorskip("ray.serve")
    with shard_servers(tmp_path_factory.mktemp("rayserve")) as (whole, processes, addresses):
        start_local_ray()
        try:
            port, http_port = free_port(), free_port()
            deployment = deploy_router(parse_config({
                "server": {"port": port, "api_key": API_KEY},
                "router": {"shards": addresses, "timeout_s": 10},
                "ray_serve": {"num_replicas": 2, "cpus_per_replica": 0.5, "http_port": http_port},
            }))
            with Client(f"127.0.0.1:{port}", api_key=API_KEY) as client:
                yield SimpleNamespace(serve=serve, whole=whole, client=client, shards=processes,
                                      shard_addresses=addresses, deployment=deployment, http_port=http_port)
        finally:
            ray.shutdown()  # Serve and its apps go with the local cluster


def test_two_replicas_answer_like_the_unsharded_collection(deployed):
    whole, client = deployed.whole, deployed.client
    replicas = deployed.serve.status().applications[deployed.deployment.app_name].deployments["router"].replica_states
    assert replicas == {"RUNNING": 2}
    assert_client_answers_like(client, whole)
    single = [SubSearch("a", vector=np.ones(8), limit=30)]
    batch = client.batch_query([query_message("c", single, limit=15), query_message("c", single, limit=5)])
    expected_ids = [h.id for h in whole.query(Query(single, limit=15)).hits]
    assert [[h.id for h in r.hits] for r in batch] == [expected_ids, expected_ids[:5]]
    # BM25 with the shards' statistics summed (the TermStatistics phase runs inside the replicas too).
    for query in bm25_queries(np.random.default_rng(8)):
        assert_same_hits(client.query("c", query.searches, query.fusion, limit=query.limit), whole.query(query))
    assert client.term_statistics("c", "text", BM25_QUERIES) == whole.term_statistics("text", BM25_QUERIES)


def test_ferret_statuses_reach_the_client_not_internal(deployed):
    client = deployed.client
    with pytest.raises(grpc.RpcError) as caught:
        client.query("nope", [SubSearch("a", vector=np.ones(8))])
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        client.query("c", [SubSearch("a", vector=np.ones(3))])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "dimension" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:  # refused by the router itself, not by a shard
        client.batch_query([])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "a batch needs 1..256 queries, got 0"
    with Client(deployed.deployment.addresses[0]) as anonymous, pytest.raises(grpc.RpcError) as caught:
        anonymous.query("c", [SubSearch("a", vector=np.ones(8))])
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_ray_serve_health_checks_answer(deployed):
    from ray.serve.generated import serve_pb2, serve_pb2_grpc

    with grpc.insecure_channel(deployed.deployment.addresses[0]) as channel:
        response = serve_pb2_grpc.RayServeAPIServiceStub(channel).Healthz(serve_pb2.HealthzRequest(), timeout=30)
    assert response.message == "success"
    with urllib.request.urlopen(f"http://127.0.0.1:{deployed.http_port}/-/healthz", timeout=30) as http:
        assert http.status == 200


def test_with_several_apps_the_application_metadata_picks_the_router(deployed):
    deployment, serve = deployed.deployment, deployed.serve
    other = serve.deployment(RouterReplica).options(name="router", ray_actor_options={"num_cpus": 0},
                                                    graceful_shutdown_wait_loop_s=0.1)  # a faster delete
    serve.run(other.bind(RouterSettings(tuple(deployed.shard_addresses))), name="other", route_prefix="/other")
    try:
        searches = [SubSearch("a", vector=np.ones(8), limit=5)]
        with Client(deployment.addresses[0], api_key=API_KEY) as plain, pytest.raises(grpc.RpcError) as caught:
            plain.query("c", searches)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert "Application metadata not set" in caught.value.details()
        with Client(deployment.addresses[0], api_key=API_KEY,
                    metadata=[("application", deployment.app_name)]) as routed:
            assert len(routed.query("c", searches).hits) == 5
    finally:
        serve.delete("other")


def test_a_deploy_that_serve_cannot_honour_fails_clearly_and_leaves_nothing(deployed):
    """Serve's proxy options are fixed when Serve first starts on a cluster: another gRPC port is ignored."""
    config = parse_config({"server": {"port": free_port()}, "router": {"shards": deployed.shard_addresses},
                           "ray_serve": {"app_name": "elsewhere", "cpus_per_replica": 0}})
    with pytest.raises(FailedPrecondition, match="did not answer for application 'elsewhere'.*serve shutdown"):
        deploy_router(config, wait_s=1)
    assert "elsewhere" not in deployed.serve.status().applications


def test_a_shard_down_is_unavailable_naming_it_or_partial_when_allowed(deployed):
    deployed.shards[1].terminate()
    deployed.shards[1].wait(timeout=30)
    down = f"shard-001 ({deployed.shard_addresses[1]})"
    searches = [SubSearch("a", vector=np.ones(8), limit=10)]
    with pytest.raises(grpc.RpcError) as caught:
        deployed.client.query("c", searches)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and down in caught.value.details()
    request = query_message("c", searches, limit=10)
    request.allow_partial = True
    with grpc.insecure_channel(deployed.deployment.addresses[0]) as channel:
        response = cpb_grpc.SearchServiceStub(channel).Query(
            request, timeout=30, metadata=[("authorization", f"Bearer {API_KEY}")])
    assert list(response.unavailable_shards) == [down]
    assert response.hits and all(shard_of(h.id, 2) == 0 for h in response.hits)


def test_every_exposed_rpc_is_a_search_service_rpc_with_its_method():
    service = cpb.DESCRIPTOR.services_by_name["SearchService"]
    for rpc_name in SEARCH_RPCS:
        assert rpc_name in service.methods_by_name
        assert callable(getattr(RouterReplica, rpc_name)) and callable(getattr(Router, SEARCH_RPCS[rpc_name]))


def test_ray_serve_config_is_validated():
    settings = ray_serve_settings({"ray_serve": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 3}})
    assert settings.deployment_options()["autoscaling_config"] == {
        "min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 3.0}
    assert ray_serve_settings({}).deployment_options()["num_replicas"] == 1
    for bad in ({"num_replicas": 0}, {"num_replicas": 2, "max_replicas": 3}, {"min_replicas": 2},
                {"min_replicas": 3, "max_replicas": 2}, {"max_ongoing_requests": 1.5}, {"replicas": 2},
                {"app_name": "a/b"}, {"num_replicas": True}, {"max_replicas": 2, "target_ongoing_requests": 6},
                {"http_port": 70000}):
        with pytest.raises(ConfigError, match=r"\[ray_serve\]"):
            ray_serve_settings({"ray_serve": bad})
    router = {"shards": ["127.0.0.1:1"]}
    for server, match in (({"port": 0}, "fixed port"), ({"host": "127.0.0.1"}, "all interfaces"),
                          ({"tls_cert": "c", "tls_key": "k"}, "TLS")):
        with pytest.raises(ConfigError, match=match):
            ingress_settings(parse_config({"server": server, "router": router}))


def test_cli_refuses_a_config_without_router_or_without_ray(tmp_path, monkeypatch, capsys):
    config = tmp_path / "router.toml"
    config.write_text("[server]\nport = 9000\n")
    assert cli.main(["serve", "--config", str(config), "--engine", "ray"]) == 2
    assert "[router]" in capsys.readouterr().err
    config.write_text('[server]\nport = 9000\n[router]\nshards = ["127.0.0.1:1"]\n')
    assert cli.main(["serve", "--config", str(config), "--engine", "ray", "--host", "127.0.0.1"]) == 2
    assert "all interfaces" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert cli.main(["serve", "--config", str(config), "--engine", "ray"]) == 1
    assert "pip install 'ferret[distributed]'" in capsys.readouterr().err
