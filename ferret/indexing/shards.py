"""Sharded collections: documents spread over N shards by a hash of their id, and the search that merges
the shards' answers into the answer of the unsharded collection.

On disk a sharded collection is a folder with `shards.json` (the manifest) and one data directory per
shard (`shard-000`, ...), each an ordinary data directory that `CollectionManager` and
`ferret serve --data-dir` open as is.

Why merged results equal the unsharded ones: every sub-search runs on every shard with its own limit L.
A document in the global top-L of a sub-search is in its shard's top-L, so merging the shards' lists by
score and cutting to L gives the global list; fusion (RRF, weighted sum) then runs on the merged lists,
after the merge, as Vespa's global phase does. Ties are broken by document id (the unsharded collection
breaks them by insertion order, which shards do not share).

That needs a document's score to be the same on its shard as in the unsharded collection. Dense and
learned/precomputed sparse scores depend on the document alone. BM25 scores also depend on collection
statistics (N, df, avgdl), so a query with BM25 text sub-searches runs in two phases, as Elasticsearch's
dfs_query_then_fetch: every shard reports its statistics for the query's texts (`term_statistics`), the
sums (the unsharded collection's statistics) travel on the BM25 sub-searches, and each shard scores
with them. A query without BM25 text sub-searches takes one round trip.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Mapping, Sequence, Set
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from ferret.encoders.registry import ModelRegistry
from ferret.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from ferret.indexing.bm25 import TermStatistics
from ferret.indexing.collection import (
    MAX_LIMIT,
    CollectionManager,
    Hit,
    Query,
    QueryResult,
    check_statistics_texts,
)
from ferret.indexing.fusion import SourceHits, SourceScore, fuse

MANIFEST = "shards.json"
MAX_SHARDS = 4096
Answer = TypeVar("Answer")


def shard_of(doc_id: str, shards: int) -> int:
    """The shard that owns a document: CRC-32 of its id modulo the shard count (stable across runs)."""
    return zlib.crc32(doc_id.encode("utf-8")) % shards


def shard_directory(index: int) -> str:
    return f"shard-{index:03d}"


@dataclass
class ShardManifest:
    collection: str
    shards: list[str]  # shard data directories, relative to the manifest's folder
    source: str = ""  # identity of the corpus file the build reads (see build.source_identity)
    complete: bool = False

    def save(self, root: str | Path) -> None:
        """Write atomically: a reader sees the old or the new manifest, never a torn one."""
        path = Path(root) / MANIFEST
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, root: str | Path) -> ShardManifest | None:
        path = Path(root) / MANIFEST
        if not path.exists():
            return None
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError) as exc:
            raise FailedPrecondition(f"{path} is not a shard manifest ({exc}); remove the folder to rebuild") from None

    def directories(self, root: str | Path) -> list[Path]:
        return [Path(root) / s for s in self.shards]


class SearchShard(Protocol):
    """What the merge needs from a shard: a `Collection`, or a client of a remote shard process, which
    raises `Unavailable` when the shard cannot be reached."""

    def query_batch(self, queries: Sequence[Query]) -> list[QueryResult]: ...

    def term_statistics(self, field: str, texts: Sequence[str]) -> TermStatistics: ...


@dataclass
class ShardedQueryResult(QueryResult):
    unavailable_shards: list[str] = field(default_factory=list)  # left out of a partial result

    @property
    def partial(self) -> bool:
        return bool(self.unavailable_shards)


def _sub_queries(query: Query) -> list[Query]:
    """One single-sub-search query per sub-search, each asking a shard for the sub-search's full list."""
    if not query.searches:
        raise InvalidArgument("a query needs at least one sub-search")
    for what, value, low in (("limit", query.limit, 1), ("offset", query.offset, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidArgument(f"{what} must be an integer >= {low}, got {value!r}")
    if query.limit + query.offset > MAX_LIMIT:
        raise InvalidArgument(f"limit + offset must be at most {MAX_LIMIT}")
    return [
        Query(
            searches=[s],
            filter=query.filter,
            limit=s.limit,
            offset=0,
            with_text=query.with_text,
            with_metadata=query.with_metadata,
        )
        for s in query.searches
    ]


def merge_shard_results(query: Query, answers: Sequence[Sequence[QueryResult]]) -> QueryResult:
    """The query's result from each shard's results of `_sub_queries(query)` (one list per shard):
    per sub-search the shards' hits merged by score and cut to its limit, then fused and paged."""
    merged: list[list[Hit]] = []
    for position, search in enumerate(query.searches):
        hits = [h for shard in answers for h in shard[position].hits]
        hits.sort(key=lambda h: (-h.score, h.id))
        merged.append(hits[: search.limit])
    by_id = {h.id: h for hits in merged for h in hits}
    if len(merged) == 1:
        source = query.searches[0].source
        ranked = [
            replace(h, sources={source: SourceScore(h.score, rank)}) for rank, h in enumerate(merged[0], 1)
        ]
    else:
        # fuse() keys documents by integer and breaks ties by it: number ids in id order.
        number = {doc_id: n for n, doc_id in enumerate(sorted(by_id))}
        ids = sorted(by_id)
        sources = [
            SourceHits(
                s.source,
                np.array([number[h.id] for h in hits], np.int64),
                np.array([h.score for h in hits], np.float64),
                s.weight,
            )
            for s, hits in zip(query.searches, merged, strict=True)
        ]
        ranked = [
            replace(by_id[ids[f.id]], score=f.score, sources=f.sources) for f in fuse(sources, query.fusion)
        ]
    page = ranked[query.offset : query.offset + query.limit]
    version = sum(result.version for shard in answers for result in shard[:1])
    return QueryResult(version, page)


class ShardedSearch:
    """Fans a query out to every shard concurrently and merges (see the module docstring).

    `bm25_fields` names the collection's BM25 fields (`CollectionSchema.bm25_fields`): text sub-searches on
    them get the summed statistics of every shard, unless they carry statistics already."""

    def __init__(
        self, shards: Mapping[str, SearchShard], executor: Executor | None = None, *, bm25_fields: Set[str]
    ):
        if not shards:
            raise InvalidArgument("a sharded search needs at least one shard")
        if len(shards) > MAX_SHARDS:
            raise InvalidArgument(f"at most {MAX_SHARDS} shards, got {len(shards)}")
        self.shards = dict(shards)
        self.bm25_fields = frozenset(bm25_fields)
        self._executor = executor or ThreadPoolExecutor(
            max_workers=min(32, len(self.shards)), thread_name_prefix="ferret-shards"
        )

    def _fan_out(
        self, call: Callable[[SearchShard], Answer], shards: Mapping[str, SearchShard]
    ) -> tuple[dict[str, Answer], list[tuple[str, str]]]:
        """(answer by shard name, [(name, why)] of the shards that raised Unavailable), calls concurrent."""
        futures = {name: self._executor.submit(call, shard) for name, shard in shards.items()}
        answers, down = {}, []
        for name, future in futures.items():
            try:
                answers[name] = future.result()
            except Unavailable as exc:
                down.append((name, str(exc)))
        return answers, down

    def _check_down(self, down: list[tuple[str, str]], allow_partial: bool) -> None:
        if down and (not allow_partial or len(down) == len(self.shards)):
            detail = "; ".join(f"shard {name}: {why}" for name, why in down)
            raise Unavailable(
                f"{len(down)} of {len(self.shards)} shards unavailable ({detail}); retry, or allow "
                "partial results"
            )

    def term_statistics(self, field: str, texts: Sequence[str]) -> TermStatistics:
        """The collection's statistics of BM25 field `field` for `texts`: the sum of every shard's
        (UNAVAILABLE naming the shards that could not answer)."""
        texts = check_statistics_texts(texts)
        answers, down = self._fan_out(lambda shard: shard.term_statistics(field, texts), self.shards)
        self._check_down(down, allow_partial=False)
        return TermStatistics.sum(answers.values())

    def query(self, query: Query, allow_partial: bool = False) -> ShardedQueryResult:
        """UNAVAILABLE naming the shards that could not answer, or, with `allow_partial`, the merge of
        the shards that did, marked partial (UNAVAILABLE still when none answered). A shard down in the
        statistics phase is left out of the search phase, so partial statistics and hits cover the same
        shards."""
        sub_queries = _sub_queries(query)
        wanted = [s.field in self.bm25_fields and s.text is not None and s.statistics is None for s in query.searches]
        texts: dict[str, list[str]] = {}  # BM25 field -> texts of its sub-searches that need statistics
        for s, needs in zip(query.searches, wanted, strict=True):
            if needs:
                texts.setdefault(s.field, []).append(s.text)
        shards, down = self.shards, []
        if texts:
            gathered, down = self._fan_out(
                lambda shard: {f: shard.term_statistics(f, t) for f, t in texts.items()}, self.shards
            )
            self._check_down(down, allow_partial)
            totals = {f: TermStatistics.sum(answer[f] for answer in gathered.values()) for f in texts}
            sub_queries = [
                replace(q, searches=[replace(s, statistics=totals[s.field])]) if needs else q
                for q, s, needs in zip(sub_queries, query.searches, wanted, strict=True)
            ]
            shards = {name: self.shards[name] for name in gathered}
        answers, searched_down = self._fan_out(lambda shard: shard.query_batch(sub_queries), shards)
        down += searched_down
        self._check_down(down, allow_partial)
        merged = merge_shard_results(query, list(answers.values()))
        return ShardedQueryResult(merged.version, merged.hits, [name for name, _ in down])

    def close(self) -> None:
        self._executor.shutdown(wait=False)


def open_local_shards(root: str | Path, registry: ModelRegistry) -> tuple[ShardManifest, list[CollectionManager]]:
    """(manifest, CollectionManager per shard) of a sharded collection folder, for in-process search."""
    manifest = ShardManifest.load(root)
    if manifest is None:
        raise NotFound(f"{Path(root) / MANIFEST} does not exist: not a sharded collection folder")
    return manifest, [CollectionManager(d, registry) for d in manifest.directories(root)]
