"""Server configuration from a TOML file.

    [server]
    host = "127.0.0.1"
    port = 50051
    max_message_mb = 256      # gRPC send/receive limit (the library default is 4 MiB)
    api_key = "secret"        # optional; clients send `authorization: Bearer secret`
    tls_cert = "server.crt"   # optional, with tls_key
    tls_key = "server.key"
    metrics_port = 9100       # optional Prometheus endpoint
    data_dir = "data"
    log_level = "INFO"
    json_logs = true
    shutdown_grace_s = 10

    [batching]
    max_batch_tokens = 16384  # padded tokens (texts x longest text) per model call
    max_batch_texts = 256
    max_queue = 4096          # texts waiting per model; beyond it RESOURCE_EXHAUSTED
    max_text_chars = 200000

    [models.NAME]             # see ferret.encoders.registry; none = the embedded defaults

The environment variable FERRET_API_KEY, when set, overrides `api_key`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ferret.encoders.registry import ModelConfig, load_config_file, parse_models


class ConfigError(ValueError):
    """A configuration the server cannot start with; the message names the key to fix."""


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_tokens: int = 16384
    max_batch_texts: int = 256
    max_queue: int = 4096
    max_text_chars: int = 200_000


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 50051
    max_message_mb: int = 256
    api_key: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    metrics_port: int | None = None
    data_dir: str = "data"
    log_level: str = "INFO"
    json_logs: bool = True
    shutdown_grace_s: float = 10.0

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 1024 * 1024


@dataclass(frozen=True)
class FerretConfig:
    server: ServerSettings = field(default_factory=ServerSettings)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    models: tuple[ModelConfig, ...] = field(default_factory=lambda: tuple(parse_models({})))
    # The whole parsed document, so that later services read their own tables ([collections], ...).
    raw: Mapping[str, Any] = field(default_factory=dict)


def check_keys(table: Mapping[str, Any], known: Iterable[str], name: str) -> None:
    """ConfigError naming the keys of table [name] that are not `known`, and the known ones."""
    known = set(known)
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"[{name}]: unknown keys {sorted(unknown)}; known keys: {', '.join(sorted(known))}")


def _section(cls: type, table: Mapping[str, Any], name: str):
    check_keys(table, (f.name for f in fields(cls)), name)
    return cls(**table)


def parse_config(doc: Mapping[str, Any]) -> FerretConfig:
    """A FerretConfig from a parsed TOML document, validated."""
    server = _section(ServerSettings, doc.get("server", {}), "server")
    batching = _section(BatchingConfig, doc.get("batching", {}), "batching")
    if env_key := os.environ.get("FERRET_API_KEY"):
        server = ServerSettings(**{**server.__dict__, "api_key": env_key})
    if bool(server.tls_cert) != bool(server.tls_key):
        raise ConfigError("[server]: tls_cert and tls_key go together; set both or neither")
    if server.max_message_mb < 1:
        raise ConfigError("[server]: max_message_mb must be at least 1")
    for key in ("max_batch_tokens", "max_batch_texts", "max_queue", "max_text_chars"):
        if getattr(batching, key) < 1:
            raise ConfigError(f"[batching]: {key} must be positive")
    return FerretConfig(server=server, batching=batching, models=tuple(parse_models(doc)), raw=dict(doc))


def load_config(path: str | Path | None) -> FerretConfig:
    """The config of `path`, or the defaults (embedded models, loopback port 50051) when None."""
    return parse_config(load_config_file(path) if path else {})
