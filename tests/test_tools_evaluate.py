"""Evaluation metrics on a hand-made case, the MetaTool split, and a small MetaTool slice end to end."""

import json

import pytest
from conftest import require_dataset

from ferret.errors import InvalidArgument
from ferret.tools import evaluate as ev
from ferret.tools.cli import format_table, main, run_eval


def test_metrics_by_hand():
    examples = [ev.Example("q1", ("a",)), ev.Example("q2", ("b", "c"))]
    rankings = [["x", "a", "y"], ["b", "x", "y", "z", "w", "c"]]
    m = ev.metrics(examples, rankings)
    assert m["recall@1"] == pytest.approx((0 + 0.5) / 2)
    assert m["recall@3"] == pytest.approx((1 + 0.5) / 2)
    assert m["recall@10"] == pytest.approx(1.0)
    assert m["completeness@5"] == pytest.approx(0.5)  # q2's "c" is 6th
    assert m["completeness@10"] == pytest.approx(1.0)
    # nDCG@5: q1 gain 1/log2(3) over ideal 1; q2 gain 1 over ideal 1 + 1/log2(3)
    import math

    q1 = 1 / math.log2(3)
    q2 = 1 / (1 + 1 / math.log2(3))
    assert m["ndcg@5"] == pytest.approx((q1 + q2) / 2, abs=1e-4)


def test_metatool_split_follows_source_md():
    data = ev.load(require_dataset("tools/metatool"))
    assert len(data.tools) == 199 and len(data.train) == 16491
    assert len(data.tests["multi"]) == 497
    train = {ev.query_key(e.query) for e in data.train}
    assert not any(ev.query_key(e.query) in train for e in data.tests["single"])
    assert len(data.tests["single"]) == 4091  # SOURCE.md's count


def test_query_key_ignores_case_and_surrounding_whitespace():
    assert ev.query_key(" Find  Papers on ML? ") == ev.query_key("find papers on ml?")
    assert ev.query_key("find papers") != ev.query_key("find paper")


def test_generic_layout_eval_cli(tmp_path, capsys):
    tools = [
        {"id": "w", "name": "Weather", "description": "weather forecast for a city"},
        {
            "id": "s",
            "name": "Stocks",
            "description": "share prices of companies",
            "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}}},
        },
        {"id": "t", "name": "Translate", "description": "translate text into another language"},
    ]
    train = [
        {"query": "will it rain in Rome", "tools": ["w"]},
        {"query": "Apple share price", "tools": ["s"]},
        {"query": "say hello in French", "tools": ["t"]},
    ]
    test = [
        {"query": "is it sunny in Madrid tomorrow", "tools": ["w"]},
        {"query": "weather and stock price of Tesla", "tools": ["w", "s"]},
    ]
    for name, rows in (("tools", tools), ("train", train), ("test", test)):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["tools", "eval", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"test"} and set(out["test"]) == {"description", "tool2vec", "bm25", "hybrid"}
    hybrid = out["test"]["hybrid"]
    assert hybrid["recall@3"] == 1.0 and hybrid["completeness@5"] == 1.0
    (tmp_path / "test.jsonl").write_text('{"query": "x"}\n')
    with pytest.raises(InvalidArgument, match="non-empty query and tools"):
        main(["tools", "eval", str(tmp_path)])


def test_metatool_slice(tmp_path):
    from ferret.tools.cli import default_encoder

    data = ev.load(require_dataset("tools/metatool"))
    keep = {t.id for t in data.tools[:12]}
    per_tool: dict[str, int] = {}
    train = []
    for e in data.train:
        if e.tools[0] in keep and per_tool.get(e.tools[0], 0) < 12:
            per_tool[e.tools[0]] = per_tool.get(e.tools[0], 0) + 1
            train.append(e)
    single = [e for e in data.tests["single"] if e.tools[0] in keep][:40]
    root = tmp_path / "slice"
    root.mkdir()
    (root / "tools.jsonl").write_text(
        "\n".join(
            json.dumps({"id": t.id, "name": t.name, "description": t.description})
            for t in data.tools
            if t.id in keep
        )
    )
    for name, rows in (("train", train), ("test", single)):
        (root / f"{name}.jsonl").write_text(
            "\n".join(json.dumps({"query": e.query, "tools": list(e.tools)}) for e in rows)
        )
    results, _ = run_eval(root, tmp_path / "work", default_encoder(), second_stages=False)
    table = results["test"]
    assert table["tool2vec"]["recall@5"] >= 0.9
    assert table["hybrid"]["recall@5"] >= table["bm25"]["recall@5"]
    assert "| hybrid |" in format_table(results)


def _generic_dataset(root):
    """Three tools, ten train queries each (phrased differently), two test queries."""
    tools = [
        {"id": "w", "name": "Weather", "description": "weather forecast for a city"},
        {"id": "s", "name": "Stocks", "description": "share prices of companies"},
        {"id": "t", "name": "Translate", "description": "translate text into another language"},
    ]
    cities = ["Rome", "Oslo", "Lima", "Cairo", "Tokyo", "Quito", "Perth", "Bern", "Riga", "Baku"]
    firms = ["Apple", "Tesla", "Sony", "Intel", "Nokia", "Shell", "Ford", "IBM", "Visa", "Nike"]
    words = ["hello", "thanks", "cat", "bread", "water", "house", "green", "night", "book", "sun"]
    train = (
        [{"query": f"will it rain in {c} tomorrow", "tools": ["w"]} for c in cities]
        + [{"query": f"what is {f} stock trading at", "tools": ["s"]} for f in firms]
        + [{"query": f"how do you say {w} in Spanish", "tools": ["t"]} for w in words]
    )
    test = [{"query": "is it sunny in Madrid", "tools": ["w"]}]
    for name, rows in (("tools", tools), ("train", train), ("test", test)):
        (root / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))


def test_tune_scores_every_setting_on_held_out_train(tmp_path):
    from ferret.tools.cli import TUNE_BM25, TUNE_DESCRIPTION, default_encoder, tune_weights

    _generic_dataset(tmp_path)
    scored = tune_weights(tmp_path, tmp_path / "work", default_encoder())
    assert len(scored) == len(TUNE_DESCRIPTION) * len(TUNE_BM25)
    ndcg = [m["ndcg@5"] for _, m in scored]
    assert ndcg == sorted(ndcg, reverse=True) and ndcg[0] == 1.0  # held-out queries are easy here


def test_train_commands_save_stages_the_engine_loads(tmp_path, capsys):
    from ferret.tools.cli import EngineTarget, default_encoder
    from ferret.tools.engine import ToolEngine
    from ferret.tools.retriever import Mode, RetrieveRequest

    _generic_dataset(tmp_path)
    encoder = default_encoder()
    built = ToolEngine(tmp_path / "work", encoder)
    EngineTarget(built).build(ev.load(tmp_path))
    built.close()
    for command in ("train-mlc", "train-refiner"):
        assert main(["tools", command, "--data-dir", str(tmp_path / "work"), "--epochs", "3"]) == 0
        assert f"{command}: " in capsys.readouterr().out
    engine = ToolEngine(tmp_path / "work", encoder)
    for classifier, rerank in ((True, False), (False, True)):
        hits = engine.retrieve_tools(
            RetrieveRequest("rain in Paris?", k=3, mode=Mode.HYBRID, classifier=classifier, rerank=rerank)
        )
        assert len(hits) == 3 and all(0.0 <= h.probability <= 1.0 for h in hits)
