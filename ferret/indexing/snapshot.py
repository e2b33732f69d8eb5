"""Atomic, checksummed index snapshots.

Index files are derived data: a snapshot is a directory `snap-<version>-<ns>` holding each field's files and
a `manifest.json` (sha256 of every file, the store version the snapshot reflects, the encoder identity
of each field). It is written under a temporary name, every file and the directory are fsynced, then it
is renamed into place and a `CURRENT` file naming it is replaced atomically (temp file, fsync, rename,
directory fsync). A crash at any point leaves either the old or the new snapshot current, never a mix;
a file whose checksum differs from the manifest raises DataLoss on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferret.errors import DataLoss

MANIFEST = "manifest.json"
CURRENT = "CURRENT"
FORMAT = 1


@dataclass(frozen=True)
class Manifest:
    directory: Path
    watermark: int  # store version the indexes reflect; replay changes after it
    fields: dict[str, dict[str, Any]]  # field -> encoder identity and index kind
    files: dict[str, str]  # path relative to the snapshot -> sha256


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a rename is durable only once its directory is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: temp file, fsync, rename, directory fsync."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def publish_snapshot(
    root: Path,
    watermark: int,
    fields: Mapping[str, Mapping[str, Any]],
    writers: Mapping[str, Callable[[Path], list[Path]]],
) -> Manifest:
    """Write every field's index with `writers[field](directory)` and publish it as the current snapshot.

    Older snapshots are removed after the switch."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"snap-{watermark:012d}-{time.time_ns()}"  # unique: never overwrites the current one
    tmp = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    files: dict[str, str] = {}
    for field_name, write in writers.items():
        written = write(tmp / field_name)
        for path in written:
            fsync_path(path)
            files[str(Path(path).relative_to(tmp))] = sha256_file(path)
        fsync_path(tmp / field_name)
    manifest = {
        "format": FORMAT,
        "watermark": watermark,
        "fields": {k: dict(v) for k, v in fields.items()},
        "files": files,
    }
    write_atomic(tmp / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
    final = root / name
    os.replace(tmp, final)
    fsync_path(root)
    write_atomic(root / CURRENT, name.encode())
    for old in root.iterdir():
        if old.name not in (name, CURRENT) and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return Manifest(final, watermark, manifest["fields"], files)


def load_snapshot(root: Path) -> Manifest | None:
    """The current snapshot after checking every file against the manifest; None when there is none.

    Raises DataLoss when a file is missing, extra bytes crept in, or a checksum differs."""
    root = Path(root)
    try:
        name = (root / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    directory = root / name
    try:
        data = json.loads((directory / MANIFEST).read_text())
        files = dict(data["files"])
        watermark = int(data["watermark"])
        fields = dict(data["fields"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataLoss(
            f"index snapshot {directory} has an unreadable manifest ({exc}); rebuild the collection's "
            "indexes from the store"
        ) from None
    for relative, expected in files.items():
        path = directory / relative
        if not path.is_file():
            raise DataLoss(
                f"index snapshot {directory}: file {relative} is missing; rebuild the indexes from the store"
            )
        if sha256_file(path) != expected:
            raise DataLoss(
                f"index snapshot {directory}: checksum mismatch in {relative}; rebuild the indexes "
                "from the store"
            )
    return Manifest(directory, watermark, fields, files)


def remove_snapshots(root: Path) -> None:
    """Forget every snapshot (the indexes will be rebuilt from the store)."""
    current = Path(root) / CURRENT
    if current.exists():
        current.unlink()
        fsync_path(current.parent)
    shutil.rmtree(root, ignore_errors=True)
