"""Where the shared test collections live (BEIR SciFact / CoSQA, MetaTool).

One place decides the location so that tests, benchmarks and `ferret eval` agree. Override with
FERRET_DATASETS; by default it is the `shared/datasets` folder beside the repository (or beside one of
its parent folders, so that git worktrees nested in a checkout find it too).
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def datasets_root() -> Path:
    env = os.environ.get("FERRET_DATASETS")
    if env:
        return Path(env)
    for folder in _REPO.parents:
        candidate = folder / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    return _REPO.parent / "shared" / "datasets"


def dataset_path(name: str) -> Path | None:
    """Folder of a shared dataset such as "beir/scifact" or "tools/metatool"; None when it is absent."""
    path = datasets_root() / name
    return path if path.is_dir() else None
