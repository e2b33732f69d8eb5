"""The shard router (`ferret.server.router_service`) as a Ray Serve application: replicas, autoscaling, and
Ray Serve's gRPC proxy as the ingress. Started by `ferret serve --config router.toml --engine ray`:

    [server]
    port = 9000                   # the gRPC ingress port, on every node that runs a Ray Serve proxy
    api_key = "secret"            # optional: clients send `authorization: Bearer secret` (checked by the replicas)
    [router]                      # as for a plain router process
    shards = ["10.0.0.1:50061", "10.0.0.2:50062"]
    [ray_serve]                   # all keys optional
    app_name = "ferret-router"    # the `application` metadata that picks this app when the cluster runs several
    num_replicas = 2              # a fixed count (default 1), or autoscaling between min and max replicas:
    # min_replicas = 1
    # max_replicas = 8
    # target_ongoing_requests = 2 # requests per replica that autoscaling aims at (Ray's default 2)
    max_ongoing_requests = 5      # requests a replica takes at once (Ray's default 5); more wait in the proxy
    cpus_per_replica = 1.0        # the router waits on its shards, so fractions are fine
    http_port = 8000              # Ray Serve always starts its HTTP proxy too (/-/healthz, /-/routes)

Each replica holds one `Router` (its own channels to the shards and fan-out threads). Ray Serve's gRPC proxy
calls the replica method named after the RPC with the request message and a `RayServegRPCContext`; the
request and the response travel pickled between proxy and replica (hence the importable module names of
the generated classes, see `ferret.proto.generate`). Statuses (checked on Ray 2.60): an exception raised
out of a method reaches the client as INTERNAL with Ray's traceback as the message, unless a code was set
on the context first, and Ray then logs it as an error with its traceback. So a FerretError is not
raised: its code and message go on the context and the method returns an empty response; the proxy sends
the context's status (a response body with a non-OK status is dropped). Health checks: Ray Serve's own
`ray.serve.RayServeAPIService/Healthz` (Ray's proxy does not serve grpc.health.v1).
Ray is imported only in this module.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import grpc
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from ferret.errors import FailedPrecondition, FerretError
from ferret.proto.ferret.v1 import collections_pb2 as pb
from ferret.proto.ferret.v1 import collections_pb2_grpc as pb_grpc
from ferret.server.auth import UNAUTHENTICATED_DETAILS, ApiKey
from ferret.server.config import ConfigError, FerretConfig, check_keys
from ferret.server.errors import error_status
from ferret.server.router_service import Router, RouterSettings, router_settings

# SearchService RPC -> the Router method that answers it. A new RPC is exposed by one line here.
SEARCH_RPCS: dict[str, str] = {"Query": "query", "BatchQuery": "batch_query", "TermStatistics": "term_statistics"}
_SEARCH_SERVICE = pb.DESCRIPTOR.services_by_name["SearchService"]
# Ray Serve's gRPC proxy registers the service through this function (imported by name on the cluster).
SERVICER_FUNCTION = "ferret.proto.ferret.v1.collections_pb2_grpc.add_SearchServiceServicer_to_server"
HEALTHZ = "/ray.serve.RayServeAPIService/Healthz"
ALL_INTERFACES = ("0.0.0.0", "::", "[::]")


@dataclass(frozen=True)
class RayServeSettings:
    """The [ray_serve] table; the defaults are Ray Serve's own (max_replicas None: a fixed num_replicas)."""

    app_name: str = "ferret-router"
    num_replicas: int = 1
    min_replicas: int = 1
    max_replicas: int | None = None
    target_ongoing_requests: float = 2.0
    max_ongoing_requests: int = 5
    cpus_per_replica: float = 1.0
    http_port: int = 8000

    @property
    def replicas(self) -> str:
        """The replica count as people read it: "2", or "1..8 (autoscaling)"."""
        if self.max_replicas is None:
            return str(self.num_replicas)
        return f"{self.min_replicas}..{self.max_replicas} (autoscaling)"

    def deployment_options(self) -> dict[str, Any]:
        """Keyword arguments of Ray Serve's `Deployment.options`."""
        options: dict[str, Any] = {"ray_actor_options": {"num_cpus": self.cpus_per_replica},
                                   "max_ongoing_requests": self.max_ongoing_requests}
        if self.max_replicas is None:
            options["num_replicas"] = self.num_replicas
        else:
            options["autoscaling_config"] = {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                                             "target_ongoing_requests": self.target_ongoing_requests}
        return options


def _checked(table: Mapping[str, Any], key: str, kind: type, low: float, high: float = float("inf")) -> Any:
    if key not in table:
        return getattr(RayServeSettings, key)
    value = table[key]
    # TOML gives int for "2" and float for "2.0"; a float key takes both, an int key only ints (bool is no int).
    kinds = (int, float) if kind is float else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"[ray_serve]: {key} must be {what} in {low}..{high}, not {value!r}")
    return kind(value)


def ray_serve_settings(raw: Mapping[str, Any]) -> RayServeSettings:
    """The [ray_serve] table of a parsed config, validated (defaults when there is none)."""
    table = raw.get("ray_serve", {})
    check_keys(table, (f.name for f in fields(RayServeSettings)), "ray_serve")
    app_name = table.get("app_name", RayServeSettings.app_name)
    if not isinstance(app_name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", app_name):
        raise ConfigError(f"[ray_serve]: app_name must be letters, digits, '_', '.' or '-', not {app_name!r}")
    settings = RayServeSettings(
        app_name=app_name,
        num_replicas=_checked(table, "num_replicas", int, 1),
        min_replicas=_checked(table, "min_replicas", int, 0),
        max_replicas=_checked(table, "max_replicas", int, 1),
        target_ongoing_requests=_checked(table, "target_ongoing_requests", float, 0.01),
        max_ongoing_requests=_checked(table, "max_ongoing_requests", int, 1),
        cpus_per_replica=_checked(table, "cpus_per_replica", float, 0),
        http_port=_checked(table, "http_port", int, 1, 65535),
    )
    scaling_keys = [k for k in ("min_replicas", "max_replicas", "target_ongoing_requests") if k in table]
    if "num_replicas" in table and scaling_keys:
        raise ConfigError(f"[ray_serve]: num_replicas (a fixed count) excludes autoscaling keys {scaling_keys}")
    if scaling_keys and settings.max_replicas is None:
        raise ConfigError("[ray_serve]: autoscaling needs max_replicas")
    if settings.max_replicas is not None and settings.min_replicas > settings.max_replicas:
        raise ConfigError(f"[ray_serve]: min_replicas {settings.min_replicas} is over max_replicas "
                          f"{settings.max_replicas}")
    if settings.target_ongoing_requests > settings.max_ongoing_requests:
        raise ConfigError(f"[ray_serve]: target_ongoing_requests {settings.target_ongoing_requests} is over "
                          f"max_ongoing_requests {settings.max_ongoing_requests}: a replica never gets that many, "
                          "so autoscaling never scales up")
    return settings


class RouterReplica:
    """One Ray Serve replica of the router: a `Router`, and a method per SearchService RPC (`SEARCH_RPCS`), named
    as the RPC since Ray Serve's gRPC proxy calls the method of that name."""

    def __init__(self, settings: RouterSettings, api_key: str | None = None):
        self.router = Router(settings)
        self.api_key = ApiKey(api_key) if api_key else None

    def answer(self, rpc_name: str, request: Message, grpc_context: Any) -> Message:
        """The response to `request`, or an empty one with the error's status set on `grpc_context`."""
        response_type = GetMessageClass(_SEARCH_SERVICE.methods_by_name[rpc_name].output_type)
        if self.api_key and not self.api_key.authorized(grpc_context.invocation_metadata()):
            grpc_context.set_code(grpc.StatusCode.UNAUTHENTICATED)
            grpc_context.set_details(UNAUTHENTICATED_DETAILS)
            return response_type()
        try:
            return getattr(self.router, SEARCH_RPCS[rpc_name])(request)
        except FerretError as exc:
            code, details, trailing_metadata = error_status(exc)
            grpc_context.set_code(code)
            grpc_context.set_details(details)
            if trailing_metadata:
                grpc_context.set_trailing_metadata(list(trailing_metadata))
            return response_type()

    def __del__(self) -> None:  # Ray Serve calls it when it stops a replica
        router = getattr(self, "router", None)
        if router is not None:
            router.close()


def _rpc_method(rpc_name: str) -> Callable[[RouterReplica, Message, Any], Message]:
    # Ray Serve passes the context only to a parameter named `grpc_context`.
    def method(self: RouterReplica, request: Message, grpc_context: Any) -> Message:
        return self.answer(rpc_name, request, grpc_context)

    method.__name__ = method.__qualname__ = rpc_name
    method.__doc__ = f"SearchService.{rpc_name}, answered by Router.{SEARCH_RPCS[rpc_name]}."
    return method


for _rpc_name in SEARCH_RPCS:
    setattr(RouterReplica, _rpc_name, _rpc_method(_rpc_name))


def _ray_serve():
    try:
        import ray
        from ray import serve
    except ImportError:
        raise FailedPrecondition(
            "serving the router on Ray Serve needs Ray Serve: pip install 'ferret[distributed]'"
        ) from None
    return ray, serve


@dataclass(frozen=True)
class RouterDeployment:
    app_name: str
    addresses: tuple[str, ...]  # "ip:port" of the gRPC ingress on each node with a Ray Serve proxy
    replicas: str  # "2" or "1..8 (autoscaling)"


def ingress_settings(config: FerretConfig) -> tuple[RouterSettings, RayServeSettings]:
    """The router and deployment settings of `config`, refusing what Ray Serve's gRPC proxy cannot honour."""
    settings = router_settings(config.raw)
    if settings is None:
        raise ConfigError("--engine ray serves the shard router: the config needs a [router] table")
    server = config.server
    if server.tls_cert:
        raise ConfigError("[server]: Ray Serve's gRPC proxy has no TLS; remove tls_cert/tls_key and terminate "
                          "TLS in front of it (a load balancer)")
    if server.port == 0:
        raise ConfigError("[server]: port must be a fixed port with --engine ray (Ray Serve does not report "
                          "the port it picked)")
    host = config.raw.get("server", {}).get("host")
    if host is not None and host not in ALL_INTERFACES:
        raise ConfigError(f'[server]: host {host!r}: Ray Serve\'s gRPC proxy listens on all interfaces; remove '
                          'host or set it to "0.0.0.0"')
    return settings, ray_serve_settings(config.raw)


def deploy_router(config: FerretConfig, address: str | None = None, wait_s: float = 120.0) -> RouterDeployment:
    """Deploy the router of `config` on Ray Serve and return once its gRPC ingress routes calls to it.

    Connects to the Ray cluster at `address` ("auto", "ray://host:10001", ...) unless Ray is initialised
    already; with no address, starts a local Ray (even if another runs on this machine). Serve's proxy
    options are cluster-wide and fixed when Serve first starts on a cluster: if it already runs with another
    gRPC port or without SearchService, the ingress does not answer for the router and this fails with
    FailedPrecondition (run `serve shutdown` first)."""
    settings, serve_settings = ingress_settings(config)
    ray, serve = _ray_serve()
    from ray.serve.config import gRPCOptions

    if not ray.is_initialized():
        ray.init(address=address or "local", include_dashboard=False)
    port = config.server.port
    deployment = serve.deployment(RouterReplica).options(name="router", **serve_settings.deployment_options())
    try:
        serve.start(
            http_options={"host": "127.0.0.1", "port": serve_settings.http_port},
            grpc_options=gRPCOptions(port=port, grpc_servicer_functions=[SERVICER_FUNCTION]),
        )
        # Without a route prefix the app is on no proxy's route table, gRPC included; the HTTP route is unused.
        serve.run(deployment.bind(settings, config.server.api_key), name=serve_settings.app_name,
                  route_prefix=f"/{serve_settings.app_name}")
    except (RuntimeError, ray.exceptions.RayError) as exc:
        # Ray's message is a remote traceback; its last line is the cause (most often a proxy or replica that
        # cannot import Ferret's modules).
        cause = str(exc).strip().splitlines()[-1]
        raise FailedPrecondition(f"Ray Serve could not deploy the router: {cause} (Ferret must be installed on "
                                 "every node; details in the Serve logs)") from None
    try:
        addresses = _ingress_addresses(ray, serve, port)
        _wait_answering(addresses[0], serve_settings.app_name, config.server.api_key, wait_s)
    except FailedPrecondition:
        serve.delete(serve_settings.app_name)  # no unreachable app left behind on a shared cluster
        raise
    return RouterDeployment(serve_settings.app_name, addresses, serve_settings.replicas)


def _ingress_addresses(ray: Any, serve: Any, port: int) -> tuple[str, ...]:
    proxy_nodes = set(serve.status().proxies)
    ips = sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"] and n["NodeID"] in proxy_nodes)
    if not ips:
        raise FailedPrecondition("Ray Serve started no proxy: no node serves the gRPC ingress")
    return tuple(f"{ip}:{port}" for ip in ips)


def _wait_answering(address: str, app_name: str, api_key: str | None, wait_s: float) -> None:
    """Wait until the ingress at `address` routes SearchService calls to the router: an empty BatchQuery comes
    back INVALID_ARGUMENT from a replica (no shard is asked). That checks the port, the service, the route,
    the pickling and the status mapping at once; routes reach the proxies a moment after the deploy."""
    metadata = [("application", app_name)] + ([("authorization", f"Bearer {api_key}")] if api_key else [])
    deadline = time.monotonic() + wait_s
    last = "no answer"
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.SearchServiceStub(channel)
        while time.monotonic() < deadline:
            try:
                stub.BatchQuery(pb.BatchQueryRequest(), timeout=5, metadata=metadata)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    return
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    raise FailedPrecondition(
                        f"the gRPC ingress at {address} does not serve ferret.v1.SearchService: Ray Serve already "
                        "runs on this cluster with other gRPC services; run `serve shutdown` and retry"
                    ) from None
                last = f"{exc.code().name}: {exc.details()}"
            time.sleep(0.5)
    raise FailedPrecondition(
        f"the gRPC ingress at {address} did not answer for application {app_name!r} within {wait_s:.0f} s "
        f"({last}); if Ray Serve already runs on this cluster with another gRPC port, run `serve shutdown` "
        "and retry"
    )


def undeploy_router(app_name: str, local_ray: bool) -> None:
    """Remove the app from the cluster (other apps and Serve itself stay), or with `local_ray`, stop the local
    Ray this process started, Serve and the app with it (its processes may already be down: Ctrl-C in a
    terminal signals them too, and a delete would then wait for a controller that is gone)."""
    ray, serve = _ray_serve()
    if not local_ray:
        serve.delete(app_name)
    ray.shutdown()
