"""Offline collection builds: corpus file -> a data directory that `ferret serve` opens as is.

Reads BEIR `corpus.jsonl` / `.jsonl.gz` (`_id`, `title`, `text`, `metadata`), plain JSONL (`id`, `text`,
optional `title`, `metadata`, `vectors` for precomputed fields) or Parquet with the same columns. Documents
are encoded and committed in batches; each batch commits, in the same transaction, how many corpus records
have been consumed, so an interrupted build resumes after the last committed batch. When the corpus is
exhausted the indexes are published as a snapshot.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ferret.encoders.registry import ModelRegistry
from ferret.errors import FailedPrecondition, InvalidArgument, NotFound
from ferret.indexing.collection import CollectionManager
from ferret.indexing.schema import CollectionSchema
from ferret.indexing.store import Document

FORMATS = ("jsonl", "parquet")


@dataclass(frozen=True)
class BuildReport:
    collection: str
    documents: int  # live documents in the collection at the end
    added: int  # corpus records committed by this run
    resumed_from: int  # corpus records a previous run had committed
    version: int
    seconds: float

    @property
    def docs_per_second(self) -> float:
        return self.added / self.seconds if self.seconds > 0 else 0.0


def corpus_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    raise InvalidArgument(f"cannot tell the format of {path}: use .jsonl, .jsonl.gz or .parquet")


def document_from_record(record: Mapping[str, Any], where: str) -> Document:
    """A corpus record (BEIR or plain JSONL/Parquet columns) as a Document; `where` names it in errors."""
    doc_id = record.get("_id", record.get("id"))
    if doc_id is None:
        raise InvalidArgument(f"{where}: a record needs an '_id' or 'id'")
    title = record.get("title") or ""
    text = record.get("text") or record.get("contents") or ""
    metadata = dict(record.get("metadata") or {})
    if title:
        metadata.setdefault("title", title)
    # BEIR's convention (and Pyserini's flat BEIR indexes): title and body joined by a space.
    return Document(
        str(doc_id), f"{title} {text}".strip() if title else text, metadata, dict(record.get("vectors") or {})
    )


def read_corpus(path: str | Path) -> Iterator[Document]:
    """Documents of a corpus file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"corpus file {path} does not exist")
    if corpus_format(path) == "parquet":
        import pyarrow.parquet as pq

        number = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                number += 1
                yield document_from_record(record, f"{path} row {number}")
        return
    for number, record in jsonl_records(path):
        yield document_from_record(record, f"{path} line {number}")


def jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of each non-blank line of a JSONL file, gzipped when it ends in .gz."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidArgument(f"{path} line {number} is not JSON: {exc}") from None


def source_identity(path: Path) -> str:
    stat = path.stat()
    return json.dumps({"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})


def build_collection(
    corpus_path: str | Path,
    data_dir: str | Path,
    name: str,
    schema: CollectionSchema | Mapping[str, Any],
    registry: ModelRegistry,
    *,
    batch_size: int = 256,
    limit: int | None = None,
    progress: bool = True,
) -> BuildReport:
    """Build (or resume building) collection `name` in `data_dir` from a corpus file.

    `limit` stops after that many corpus records (for slices). Re-running a finished build is a no-op;
    re-running with another corpus file or schema is FailedPrecondition."""
    corpus_path = Path(corpus_path)
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 10_000:
        raise InvalidArgument(f"batch_size must be in 1..10000, got {batch_size!r}")
    source = source_identity(corpus_path) if corpus_path.is_file() else None
    if source is None:
        raise NotFound(f"corpus file {corpus_path} does not exist")
    started = time.perf_counter()
    manager = CollectionManager(data_dir, registry)
    try:
        collection = _open_or_create(manager, name, schema, source)
        done = int(manager.store.get_meta(name, "build.offset") or 0)
        added = 0
        if manager.store.get_meta(name, "build.complete") != "1":
            bar = tqdm(
                total=limit,
                initial=done,
                unit="docs",
                desc=f"building {name}",
                disable=not progress,
                dynamic_ncols=True,
                mininterval=1.0,
            )
            batch: list[Document] = []
            consumed = done
            for position, document in enumerate(read_corpus(corpus_path)):
                if limit is not None and position >= limit:
                    break
                if position < done:
                    continue
                batch.append(document)
                consumed = position + 1
                if len(batch) == batch_size:
                    collection.upsert(batch, meta={"build.offset": str(consumed)})
                    added += len(batch)
                    bar.update(len(batch))
                    batch = []
            if batch:
                collection.upsert(batch, meta={"build.offset": str(consumed)})
                added += len(batch)
                bar.update(len(batch))
            bar.close()
            manager.store.update_meta(name, {"build.complete": "1"})
        collection.snapshot()
        return BuildReport(
            name, collection.count(), added, done, collection.version, time.perf_counter() - started
        )
    finally:
        manager.close(snapshot=False)


def _open_or_create(
    manager: CollectionManager, name: str, schema: CollectionSchema | Mapping[str, Any], source: str
):
    if name not in manager.list():
        collection = manager.create(name, schema)
        manager.store.update_meta(name, {"build.source": source})
        return collection
    previous = manager.store.get_meta(name, "build.source")
    if previous is None:
        raise FailedPrecondition(
            f"collection {name!r} already exists and was not made by a build; pick another name or drop it"
        )
    if previous != source:
        raise FailedPrecondition(
            f"collection {name!r} is being built from {json.loads(previous)['path']}, "
            f"not this corpus; drop it to start over"
        )
    wanted = schema if isinstance(schema, CollectionSchema) else CollectionSchema.from_dict(dict(schema))
    existing = manager.get(name).schema
    if [f.name for f in (*wanted.dense, *wanted.sparse)] != [
        f.name for f in (*existing.dense, *existing.sparse)
    ]:
        raise FailedPrecondition(
            f"collection {name!r} was started with another schema; drop it to start over"
        )
    return manager.get(name)
