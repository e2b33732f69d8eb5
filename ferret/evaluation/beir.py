"""A BEIR-format test collection on disk and the measures of a ranking against its qrels.

A BEIR folder holds `corpus.jsonl` or `corpus.jsonl.gz` (`_id`, `title`, `text`), `queries.jsonl`
(`_id`, `text`) and `qrels/<split>.tsv` (`query-id`, `corpus-id`, `score`, with a header line). Only the
queries the chosen qrels name are evaluated. Measures come from `ir-measures` (trec_eval semantics:
linear gains, a qrel score <= 0 is not relevant).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import ir_measures
from ir_measures import RR, R, nDCG

from ferret.errors import InvalidArgument, NotFound
from ferret.indexing.build import jsonl_records

# JSON key -> ir-measures measure. RR@10 is MRR@10 once averaged over queries.
MEASURES = {"ndcg@10": nDCG @ 10, "recall@100": R @ 100, "mrr@10": RR @ 10}
RANKING_DEPTH = 100  # the deepest cut-off among MEASURES


@dataclass(frozen=True)
class BeirQuery:
    id: str
    text: str


@dataclass(frozen=True)
class BeirCollection:
    name: str  # the folder name, e.g. "scifact"
    corpus: Path
    queries: list[BeirQuery]  # those with qrels in the split, in file order
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> relevance


def corpus_file(folder: Path) -> Path:
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    raise NotFound(f"{folder} has no corpus.jsonl or corpus.jsonl.gz: is it a BEIR-format folder?")


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        splits = sorted(p.stem for p in path.parent.glob("*.tsv"))
        raise NotFound(f"no qrels file {path}; splits present: {splits or 'none'}")
    qrels: dict[str, dict[str, int]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        parts = line.split("\t")
        if (number == 1 and parts[0] == "query-id") or not line.strip():
            continue
        if len(parts) != 3:
            raise InvalidArgument(f"{path} line {number}: expected query-id<TAB>corpus-id<TAB>score")
        try:
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
        except ValueError:
            raise InvalidArgument(f"{path} line {number}: score {parts[2]!r} is not an integer") from None
    return qrels


def load_beir(folder: str | Path, split: str = "test") -> BeirCollection:
    """The corpus path, the split's queries and its qrels; NotFound / InvalidArgument say what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFound(f"BEIR folder {folder} does not exist")
    corpus = corpus_file(folder)
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    queries_path = folder / "queries.jsonl"
    if not queries_path.is_file():
        raise NotFound(f"{folder} has no queries.jsonl")
    queries = [BeirQuery(str(record["_id"]), record["text"]) for _, record in jsonl_records(queries_path)
               if str(record["_id"]) in qrels]
    missing = set(qrels) - {q.id for q in queries}
    if missing:
        raise InvalidArgument(f"{len(missing)} query ids of the {split} qrels are not in {queries_path}, "
                              f"e.g. {sorted(missing)[:3]}")
    return BeirCollection(folder.resolve().name, corpus, queries, qrels)


# A served ranking: (doc id, score) pairs, best first.
Ranking = list[tuple[str, float]]


def drop_self_hits(run: Mapping[str, Ranking]) -> dict[str, Ranking]:
    """Each ranking without the query's own id (BEIR `ignore_identical_ids`, Pyserini `--remove-query`)."""
    return {query_id: [(d, s) for d, s in ranking if d != query_id] for query_id, ranking in run.items()}


def evaluate(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Ranking]) -> dict[str, float]:
    """Mean of each of MEASURES over the queries of `run` ((doc id, served score) pairs).

    The served scores go to ir-measures as they are, so documents with equal scores are ordered by
    trec_eval's rule (doc id), as BEIR and MTEB evaluate, not by the server's order among ties. That
    matters on corpora with duplicate documents: CoSQA has many identical functions, and the server's tie
    order (later insertions first) happened to favour its test-partition functions, which the corpus
    lists last. A query with an empty ranking counts as 0, which trec_eval would leave out of the mean.
    """
    scored = {q: dict(ranking) for q, ranking in run.items()}
    judged = {q: dict(qrels[q]) for q in run}
    per_query = {key: dict.fromkeys(run, 0.0) for key in MEASURES}
    by_measure = {measure: key for key, measure in MEASURES.items()}
    for metric in ir_measures.iter_calc(list(MEASURES.values()), judged, scored):
        per_query[by_measure[metric.measure]][metric.query_id] = metric.value
    return {key: sum(values.values()) / len(values) if values else 0.0 for key, values in per_query.items()}
