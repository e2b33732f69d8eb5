"""Tool-retrieval evaluation: dataset loaders (MetaTool, generic layout) and metrics.

Recall@k and nDCG@k come from ir-measures (binary relevance: nDCG's ideal DCG is over min(k, |gold|)
as in the Tool2Vec evaluator). Completeness@k (= MTRB's Sufficiency@k, ToolRet's C@k) is 1 for a query
when every gold tool is in its top k, else 0, averaged over queries; ir-measures has no such measure.

The loop takes a `Retrieve` callable (queries, k) -> ranked tool ids per query, so the same code
evaluates the in-process retriever or a gRPC client.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import ir_measures
from ir_measures import Recall, nDCG

from ferret.errors import InvalidArgument
from ferret.tools.catalogue import Tool, parse_parameters

CUTOFFS_RECALL = (1, 3, 5, 10)
CUTOFFS_NDCG = (5, 10)
CUTOFFS_COMPLETENESS = (5, 10)

Retrieve = Callable[[list[str], int], list[list[str]]]


@dataclass(frozen=True)
class Example:
    query: str
    tools: tuple[str, ...]


@dataclass
class ToolDataset:
    tools: list[Tool]
    train: list[Example]
    tests: dict[str, list[Example]]  # test-set name -> examples

    def subsample(self, every: int) -> ToolDataset:
        """Every `every`-th train and test example (all tools kept)."""
        if every < 1:
            raise InvalidArgument(f"every={every}; use 1 or more")
        return ToolDataset(self.tools, self.train[::every], {k: v[::every] for k, v in self.tests.items()})


def load(data_dir: str | Path) -> ToolDataset:
    """MetaTool's raw layout (all_clean_data.csv + plugin_des.json) or the generic tools/train/test.jsonl."""
    root = Path(data_dir)
    if (root / "all_clean_data.csv").exists() and (root / "plugin_des.json").exists():
        return load_metatool(root)
    if (root / "tools.jsonl").exists():
        return load_generic(root)
    raise InvalidArgument(
        f"{root} holds neither MetaTool's files (all_clean_data.csv, plugin_des.json) nor "
        "the generic layout (tools.jsonl, train.jsonl, test.jsonl)"
    )


def load_metatool(root: Path) -> ToolDataset:
    """The project split of SOURCE.md: CSV row index % 5 == 0 is test, test queries seen in train dropped
    (16,491 train rows, 4,091 single test queries; a query repeated inside the test part is kept twice,
    as in SOURCE.md); the 497 two-tool queries are the `multi` test set."""
    descriptions = json.loads((root / "plugin_des.json").read_text())
    with open(root / "all_clean_data.csv", newline="", encoding="utf-8") as fh:
        rows = [(r["Query"], r["Tool"]) for r in csv.DictReader(fh)]
    train = [Example(q, (t,)) for i, (q, t) in enumerate(rows) if i % 5]
    seen = {query_key(e.query) for e in train}
    single = [Example(q, (t,)) for i, (q, t) in enumerate(rows) if i % 5 == 0 and query_key(q) not in seen]
    multi = [
        Example(r["query"], tuple(r["tool"]))
        for r in json.loads((root / "multi_tool_query_golden.json").read_text())
    ]
    tools = [Tool(id=name, name=name, description=desc) for name, desc in sorted(descriptions.items())]
    return ToolDataset(tools=tools, train=train, tests={"single": single, "multi": multi})


def query_key(query: str) -> str:
    """What makes two queries the same for the split: case and surrounding/repeated whitespace do not
    count (three test rows differ from a train query only by a trailing space)."""
    return " ".join(query.lower().split())


def load_generic(root: Path) -> ToolDataset:
    tools = []
    for rec in _jsonl(root / "tools.jsonl"):
        tool_id = str(rec["id"])
        tools.append(
            Tool(
                id=tool_id,
                name=rec.get("name", tool_id),
                description=rec["description"],
                parameters=parse_parameters(rec.get("parameters"), tool_id),
            )
        )
    return ToolDataset(
        tools=tools,
        train=load_examples(root / "train.jsonl"),
        tests={"test": load_examples(root / "test.jsonl")},
    )


def load_examples(path: Path) -> list[Example]:
    """JSONL of {"query": ..., "tools": [ids]}."""
    out = []
    for r in _jsonl(path):
        if not r.get("query") or not r.get("tools"):
            raise InvalidArgument(f"{path}: every line needs a non-empty query and tools list, got {r}")
        out.append(Example(r["query"], tuple(map(str, r["tools"]))))
    return out


def _jsonl(path: Path) -> list[dict]:
    if not path.exists():
        raise InvalidArgument(
            f"{path} is missing; the generic layout needs tools.jsonl, train.jsonl, test.jsonl"
        )
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidArgument(f"{path}:{n} is not JSON: {exc.msg}") from exc
    return out


def metrics(examples: Sequence[Example], rankings: Sequence[Sequence[str]]) -> dict[str, float]:
    """Recall@{1,3,5,10}, nDCG@{5,10}, Completeness@{5,10} as fractions, keyed like `recall@5`."""
    if len(examples) != len(rankings):
        raise InvalidArgument(f"{len(examples)} examples but {len(rankings)} rankings")
    qrels = [ir_measures.Qrel(str(i), tool, 1) for i, e in enumerate(examples) for tool in e.tools]
    # Scores strictly decreasing by rank; the tool id breaks no tie since none occur.
    run = [
        ir_measures.ScoredDoc(str(i), tool, float(len(ranked) - r))
        for i, ranked in enumerate(rankings)
        for r, tool in enumerate(ranked)
    ]
    measures = [Recall @ k for k in CUTOFFS_RECALL] + [nDCG @ k for k in CUTOFFS_NDCG]
    agg = ir_measures.calc_aggregate(measures, qrels, run)
    out = {f"recall@{k}": float(agg[Recall @ k]) for k in CUTOFFS_RECALL}
    out.update({f"ndcg@{k}": float(agg[nDCG @ k]) for k in CUTOFFS_NDCG})
    for k in CUTOFFS_COMPLETENESS:
        out[f"completeness@{k}"] = completeness(examples, rankings, k)
    return out


def completeness(examples: Sequence[Example], rankings: Sequence[Sequence[str]], k: int) -> float:
    """Share of queries whose gold tools are all in the top k."""
    hits = [set(e.tools).issubset(ranked[:k]) for e, ranked in zip(examples, rankings, strict=True)]
    return sum(hits) / len(hits) if hits else 0.0


def evaluate(
    retrieve: Retrieve, examples: Sequence[Example], k: int = max(CUTOFFS_RECALL)
) -> dict[str, float]:
    rankings = retrieve([e.query for e in examples], k)
    return metrics(examples, rankings)


def validation_split(train: Sequence[Example], every: int = 10) -> tuple[list[Example], list[Example]]:
    """(fit, validation): every `every`-th train example is held out, for tuning without touching test."""
    fit = [e for i, e in enumerate(train) if i % every]
    held = [e for i, e in enumerate(train) if i % every == 0]
    return fit, held
