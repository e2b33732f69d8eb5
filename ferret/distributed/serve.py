"""The router of a sharded collection as a Ray Serve deployment: replicas and autoscaling on a Ray cluster.

Same work as the `[router]` process (`ferret.server.router_service.Router`), exposed through Ray Serve's
gRPC ingress as `ferret.v1.SearchService` (clients add the metadata `application: <name>`). Ray Serve turns
any exception into INTERNAL, so a Ferret error is returned with its own status code and message through
the request's gRPC context instead. Ray Serve's ingress answers its own health service
(`ray.serve.RayServeAPIService/Healthz`), not grpc.health.v1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ray import serve
from ray.serve.config import gRPCOptions
from ray.serve.grpc_util import RayServegRPCContext

from ferret.errors import FerretError
from ferret.proto.ferret.v1 import collections_pb2 as pb
from ferret.server.router_service import Router, RouterSettings

SERVICER_FUNCTION = "ferret.proto.ferret.v1.collections_pb2_grpc.add_SearchServiceServicer_to_server"
# Ray Serve's defaults since 2.32 (target 2 ongoing requests per replica), with room for a few replicas.
AUTOSCALING = {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2}


@serve.deployment(autoscaling_config=AUTOSCALING, max_ongoing_requests=8)
class SearchRouter:
    def __init__(self, settings: RouterSettings):
        self.router = Router(settings)

    def _answer(self, work: Callable[[Any], Any], request: Any, empty: Any, context: RayServegRPCContext):
        try:
            return work(request)
        except FerretError as exc:
            context.set_code(exc.code)
            context.set_details(str(exc))
            return empty

    def Query(self, request: pb.QueryRequest, grpc_context: RayServegRPCContext) -> pb.QueryResponse:  # noqa: N802
        return self._answer(self.router.query, request, pb.QueryResponse(), grpc_context)

    def BatchQuery(  # noqa: N802
        self, request: pb.BatchQueryRequest, grpc_context: RayServegRPCContext
    ) -> pb.BatchQueryResponse:
        return self._answer(self.router.batch_query, request, pb.BatchQueryResponse(), grpc_context)


def run_router(
    settings: RouterSettings,
    grpc_port: int = 9000,
    name: str = "ferret-router",
    deployment_options: Mapping[str, Any] | None = None,
) -> None:
    """Start Ray Serve's gRPC ingress on `grpc_port` (on the connected Ray cluster) and deploy the router
    as application `name`; `deployment_options` override e.g. `autoscaling_config` or `num_replicas`."""
    serve.start(grpc_options=gRPCOptions(port=grpc_port, grpc_servicer_functions=[SERVICER_FUNCTION]))
    deployment = SearchRouter.options(**dict(deployment_options or {}))
    serve.run(deployment.bind(settings), name=name, route_prefix=None)
