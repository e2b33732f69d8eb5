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
