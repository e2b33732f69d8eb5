"""The router as a Ray Serve deployment (gRPC ingress) in front of 2 shard processes on loopback."""

import grpc
import numpy as np
import pytest
from test_router import cluster, free_port  # noqa: F401 - `cluster` is a fixture used below
from test_shards import assert_same_up_to_ties

from ferret.client import query_message
from ferret.indexing.collection import Query, SubSearch
from ferret.indexing.fusion import RRF
from ferret.proto.ferret.v1 import collections_pb2 as cpb
from ferret.proto.ferret.v1 import collections_pb2_grpc as cpb_grpc
from ferret.server.router_service import RouterSettings

ray = pytest.importorskip("ray")
from ray import serve  # noqa: E402

from ferret.distributed.serve import run_router  # noqa: E402


def test_router_on_ray_serve_answers_like_the_unsharded_collection(cluster):  # noqa: F811
    whole, _, _, addresses, _ = cluster
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024 * 1024)
    try:
        port = free_port()
        run_router(RouterSettings(tuple(addresses), 10.0), grpc_port=port,
                   deployment_options={"autoscaling_config": {"min_replicas": 1, "max_replicas": 1}})
        searches = [SubSearch("a", vector=np.ones(8), limit=30), SubSearch("b", vector=-np.ones(8), limit=30)]
        metadata = (("application", "ferret-router"),)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = cpb_grpc.SearchServiceStub(channel)
            response = stub.Query(query_message("c", searches, RRF(), limit=10), metadata=metadata, timeout=60)
            batch = stub.BatchQuery(cpb.BatchQueryRequest(queries=[query_message("c", searches[:1], limit=5)]),
                                    metadata=metadata, timeout=60)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Query(query_message("nope", searches), metadata=metadata, timeout=60)
        expected = whole.query(Query(searches, fusion=RRF(), limit=10))
        assert_same_up_to_ties(response, expected)  # pb hits have the same id and score attributes
        assert [h.id for h in batch.results[0].hits] == [h.id for h in whole.query(Query(searches[:1], limit=5)).hits]
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in caught.value.details()
    finally:
        serve.shutdown()
        ray.shutdown()
