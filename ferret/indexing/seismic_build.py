"""Build a Seismic (pyseismic-lsr) index in a child process.

pyseismic-lsr's `build_from_dataset` holds the GIL for the whole build (measured: a Python thread got
~1% of its ticks during a 50 s build), so built in-process it would stall every search and write of
the server, and its Rust code prints progress straight to file descriptor 1, which no Python setting
silences. A child process fixes both: it reads the CSR arrays from a work folder, builds, saves the
index there, and the parent loads the saved file while it only waited on `subprocess.run` (no GIL).

The child runs this file by path, so it needs numpy and seismic, not the `ferret` package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import seismic

U16_COMPONENTS = 65_535  # the default Seismic index stores component ids as u16
_ARRAYS = "csr.npz"
_PARAMS = "params.json"
_STEM = "index"  # Seismic appends ".index.seismic"


def index_types(columns: int) -> tuple[type, type]:
    """(dataset type, index type) for vectors with `columns` components: LV past the u16 range."""
    if columns <= U16_COMPONENTS:
        return seismic.SeismicDataset, seismic.SeismicIndex
    return seismic.SeismicDatasetLV, seismic.SeismicIndexLV


def build_in_child(
    indptr: np.ndarray, columns: np.ndarray, values: np.ndarray, width: int, params: dict[str, Any]
) -> Any:
    """Seismic index over CSR rows (row position = string doc id, column = component id), built by a
    child process. Raises RuntimeError with the child's error output when the build fails."""
    with tempfile.TemporaryDirectory(prefix="ferret-seismic-") as work:
        folder = Path(work)
        np.savez(
            folder / _ARRAYS,
            indptr=indptr.astype(np.int64),
            columns=columns.astype(np.int32),  # half the bytes; Seismic takes int64, cast in the child
            values=values.astype(np.float32),
        )
        (folder / _PARAMS).write_text(json.dumps({"width": width, "build": params}), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"Seismic build failed (exit {done.returncode}): {done.stderr[-2000:]}")
        return index_types(width)[1].load(str(folder / f"{_STEM}.index.seismic"))


def _child(folder: Path) -> None:
    spec = json.loads((folder / _PARAMS).read_text(encoding="utf-8"))
    with np.load(folder / _ARRAYS) as arrays:
        indptr, columns, values = arrays["indptr"], arrays["columns"].astype(np.int64), arrays["values"]
    dataset_type, index_type = index_types(spec["width"])
    dataset = dataset_type()
    # Empty rows are skipped by Seismic; their position ids simply never come back.
    dataset.add_documents_by_id([str(p) for p in range(len(indptr) - 1)], columns, values, indptr)
    index_type.build_from_dataset(dataset, **spec["build"]).save(str(folder / _STEM))


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
