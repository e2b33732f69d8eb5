"""Prometheus metrics of one server (own registry, so several servers can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Geometric latency buckets from 0.5 ms to ~65 s.
_LATENCY_BUCKETS = tuple(0.0005 * 2**i for i in range(18))
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_TOKEN_BUCKETS = tuple(64 * 2**i for i in range(12))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("ferret_requests", "RPCs by method and status code", ["method", "code"], registry=r)
        self.latency = Histogram("ferret_request_seconds", "RPC latency", ["method"], buckets=_LATENCY_BUCKETS,
                                 registry=r)
        self.batch_texts = Histogram("ferret_batch_texts", "Texts per model call", ["model"], buckets=_SIZE_BUCKETS,
                                     registry=r)
        self.batch_tokens = Histogram("ferret_batch_padded_tokens", "Padded tokens per model call", ["model"],
                                      buckets=_TOKEN_BUCKETS, registry=r)
        self.queue_depth = Gauge("ferret_queue_depth", "Texts waiting in a model's queue", ["model"], registry=r)
        self.dropped = Counter("ferret_queue_dropped", "Texts dropped from a queue", ["model", "reason"], registry=r)
        self._http = None

    def serve(self, host: str, port: int) -> int:
        """Start the /metrics HTTP endpoint; returns the bound port (useful with port 0)."""
        self._http, _ = start_http_server(port, addr=host, registry=self.registry)
        return self._http.server_port

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
