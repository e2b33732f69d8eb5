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
