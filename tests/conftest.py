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
