import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from ferret.datasets import dataset_path, datasets_root  # noqa: E402


def require_dataset(name: str):
    """Path of a shared dataset, or skip the test with the reason why."""
    path = dataset_path(name)
    if path is None:
        pytest.skip(f"dataset {name!r} not found under {datasets_root()} (set FERRET_DATASETS to its parent)")
    return path


@pytest.fixture(scope="session")
def ferret_server():
    """A real Ferret server on the embedded defaults, on a free loopback port, shared by the session.

    Loading all-MiniLM-L6-v2 costs seconds, so every test that only needs the defaults reuses this one.
    The Prometheus endpoint is on too (a free port: `ferret_server.server.metrics_port`).
    """
    from ferret.server.app import ServerThread
    from ferret.server.config import parse_config

    server = ServerThread(parse_config({"server": {"host": "127.0.0.1", "port": 0, "metrics_port": 0}})).start()
    server.wait_ready()
    yield server
    server.stop(grace=1)


@pytest.fixture(scope="session")
def ferret_client(ferret_server):
    from ferret.client import Client

    with Client(ferret_server.address) as client:
        yield client
