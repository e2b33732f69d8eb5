"""QTA end to end on a tiny randomly initialised causal LM: rewrite -> retrieve, pairs, one DPO step."""

import pytest

from ferret.tools.catalogue import Tool
from ferret.tools.evaluate import Example
from ferret.tools.qta import (
    DPOSettings,
    GenerationSettings,
    QueryRewriter,
    gold_score,
    preference_pairs,
    read_pairs,
    train_qta,
    write_pairs,
)

TOOLS = {
    "calendar": Tool(id="calendar", name="Calendar", description="calendar events"),
    "weather": Tool(id="weather", name="WeatherTool", description="weather forecast of rain tomorrow"),
    "stocks": Tool(id="stocks", name="StockTool", description="stock price of shares"),
    "translate": Tool(id="translate", name="Translator", description="translate text to french"),
}


def keyword_retrieve(queries, k):
    """A frozen lexical retriever: tools ordered by shared words, ties by id (so "calendar" wins a tie)."""
    out = []
    for q in queries:
        words = set(q.lower().split())
        out.append(sorted(TOOLS, key=lambda t: (-len(words & set(TOOLS[t].description.split())), t))[:k])
    return out


def test_rewrite_then_retrieve(tiny_lm):
    rewriter = QueryRewriter(tiny_lm, settings=GenerationSettings(max_new_tokens=8), timeout_s=30)
    rewrite = rewriter.rewrite("will it rain tomorrow", [TOOLS["weather"]])
    assert not rewrite.fell_back and rewrite.text
    assert rewrite.text != "will it rain tomorrow"
    assert len(keyword_retrieve([rewrite.text], 2)[0]) == 2


def test_timeout_falls_back_to_original_query(tiny_lm):
    rewriter = QueryRewriter(tiny_lm, settings=GenerationSettings(max_new_tokens=128), timeout_s=1e-4)
    rewrite = rewriter.rewrite("will it rain tomorrow")
    assert rewrite.fell_back and rewrite.text == "will it rain tomorrow" and "longer than" in rewrite.reason


def test_bounded_settings_and_template():
    from ferret.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        GenerationSettings(max_new_tokens=10_000)
    with pytest.raises(InvalidArgument):
        GenerationSettings(temperature=0)


def test_gold_score_orders_by_gold_position():
    assert gold_score(["a", "b", "c"], ["a"]) == 1.0
    assert gold_score(["a", "b", "c"], ["b", "c"]) == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert gold_score(["a"], ["z"]) == 0.0


def test_pairs_then_dpo_step(tiny_lm, tmp_path):
    rewriter = QueryRewriter(tiny_lm, settings=GenerationSettings(max_new_tokens=8), timeout_s=30)
    examples = [
        Example("price of shares", ("stocks",)),
        Example("say it in french", ("translate",)),
        Example("rain tomorrow", ("weather",)),
    ] * 2
    pairs = preference_pairs(rewriter, keyword_retrieve, TOOLS, examples, rewrites_per_query=3)
    # Each original query shares words with its gold tool only, so it ranks the gold tool first; the
    # random LM's word salad mostly shares none and ranks "calendar" first: original chosen, salad rejected.
    assert pairs
    for pair in pairs:
        assert pair.chosen_score > pair.rejected_score
        assert "User request:" in pair.prompt
    write_pairs(pairs, tmp_path / "pairs.jsonl")
    assert read_pairs(tmp_path / "pairs.jsonl") == pairs
    out = tmp_path / "aligned"
    metrics = train_qta(tiny_lm, pairs, out, DPOSettings(max_steps=1, batch_size=2, max_length=1024))
    assert "train_loss" in metrics
    aligned = QueryRewriter(out, settings=GenerationSettings(max_new_tokens=4), timeout_s=30)
    assert aligned.rewrite("rain tomorrow").text
