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
def minilm_registry():
    """A ModelRegistry with the real all-MiniLM-L6-v2 and BM25, loaded once per test session."""
    from ferret.encoders.registry import DEFAULT_MODELS, ModelRegistry

    return ModelRegistry.from_configs(list(DEFAULT_MODELS))


@pytest.fixture(scope="session")
def scifact_slice():
    """(doc ids, texts "title text", test queries) of the first 1,000 SciFact documents."""
    import gzip
    import json

    folder = require_dataset("beir/scifact")
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for _, line in zip(range(1000), f, strict=False)]
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for _, line in zip(range(100), f, strict=False)]
    return [d["_id"] for d in docs], [f"{d['title']} {d['text']}" for d in docs], queries


@pytest.fixture(scope="session")
def lucene_scifact_index(scifact_slice, tmp_path_factory):
    """A Lucene index of `scifact_slice` built by Pyserini (docid = position in the slice)."""
    from ferret.indexing.lucene import lucene_available, start_jvm

    reason = lucene_available()
    if reason:
        pytest.skip(reason)
    start_jvm()
    from pyserini.index.lucene import LuceneIndexer

    directory = tmp_path_factory.mktemp("lucene") / "index"
    indexer = LuceneIndexer(str(directory), threads=1)
    for position, text in enumerate(scifact_slice[1]):
        indexer.add_doc_dict({"id": str(position), "contents": text})
    indexer.close()
    return directory


@pytest.fixture(scope="session")
def ferret_server(tmp_path_factory):
    """A real Ferret server on the embedded defaults, on a free loopback port, shared by the session.

    Loading all-MiniLM-L6-v2 costs seconds, so every test that only needs the defaults reuses this one.
    The Prometheus endpoint is on too (a free port: `ferret_server.server.metrics_port`).
    """
    from ferret.server.app import ServerThread
    from ferret.server.config import parse_config

    data_dir = str(tmp_path_factory.mktemp("ferret-data"))
    settings = {"host": "127.0.0.1", "port": 0, "metrics_port": 0, "data_dir": data_dir}
    server = ServerThread(parse_config({"server": settings})).start()
    server.wait_ready()
    yield server
    server.stop(grace=1)


@pytest.fixture(scope="session")
def ferret_client(ferret_server):
    from ferret.client import Client

    with Client(ferret_server.address) as client:
        yield client
