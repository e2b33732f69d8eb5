"""Tool retrieval with the real all-MiniLM-L6-v2: signals, Tool2Vec maths, modes, filters, second stages."""

import numpy as np
import pytest

from ferret.errors import FailedPrecondition, InvalidArgument
from ferret.tools.catalogue import Tool
from ferret.tools.engine import ToolEngine
from ferret.tools.retriever import Mode, RetrieveRequest, SetOptions
from ferret.tools.signals import l2_normalise

TOOLS = [
    Tool(
        id="weather",
        name="WeatherForecast",
        description="Get the weather forecast for a city.",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
        namespace="home",
        tags=("outdoor",),
    ),
    Tool(
        id="stocks",
        name="StockPrice",
        description="Look up the latest share price of a listed company.",
        namespace="finance",
    ),
    Tool(id="translate", name="Translator", description="Translate text between languages."),
    Tool(
        id="recipes",
        name="RecipeFinder",
        description="Find cooking recipes from ingredients.",
        namespace="home",
    ),
]
USAGE = [
    ("do I need an umbrella in Paris tomorrow", ["weather"]),
    ("how hot will it be this weekend", ["weather"]),
    ("what is Apple trading at", ["stocks"]),
    ("how did Tesla shares do today", ["stocks"]),
    ("say thank you in Japanese", ["translate"]),
    ("what does 'gato' mean in English", ["translate"]),
    ("what can I cook with eggs and spinach", ["recipes"]),
    ("a quick pasta dinner idea", ["recipes"]),
]


@pytest.fixture(scope="module")
def encoder():
    from ferret.tools.cli import default_encoder

    return default_encoder()


@pytest.fixture()
def engine(tmp_path, encoder):
    engine = ToolEngine(tmp_path, encoder)
    engine.upsert_tools(TOOLS)
    engine.record_usage(USAGE)
    return engine


def test_tool2vec_running_sum_and_blend(engine):
    signals = engine.signals
    row = signals.ids.index("weather")
    queries = [q for q, t in USAGE if t == ["weather"]]
    vectors = signals.embed_queries(queries)
    np.testing.assert_allclose(signals.usage_sum[row], vectors.sum(0), atol=1e-5)
    assert signals.usage_count[row] == 2
    centroid = l2_normalise(vectors.mean(0))
    w = 2 / (2 + signals.prior_usages)
    expected = l2_normalise(w * centroid + (1 - w) * signals.description[row])
    np.testing.assert_allclose(signals.tool2vec()[row], expected, atol=1e-5)
    # one more usage: O(1) update of sum and count, and the same state after a restart
    engine.record_usage([("rain in London?", ["weather"])])
    assert signals.usage_count[row] == 3
    reopened = ToolEngine(engine.data_dir, signals.encoder)
    np.testing.assert_allclose(reopened.signals.tool2vec(), signals.tool2vec(), atol=1e-5)


def test_every_mode_finds_the_right_tool(engine):
    for mode in Mode:
        hits = engine.retrieve_tools(
            RetrieveRequest("snow in the forecast for Oslo on Friday?", k=2, mode=mode)
        )
        assert hits[0].tool_id == "weather", mode
    hits = engine.retrieve_tools(RetrieveRequest("share price of Microsoft", k=4))
    assert hits[0].tool_id == "stocks"
    assert set(hits[0].signals) == {"tool2vec", "bm25"}  # the default hybrid weights description 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_bm25_returns_only_tools_that_share_a_term(engine):
    hits = engine.retrieve_tools(RetrieveRequest("recipe for soup", k=4, mode=Mode.BM25))
    assert [h.tool_id for h in hits] == ["recipes"] and hits[0].score > 0
    assert engine.retrieve_tools(RetrieveRequest("zzyzx qwv", k=4, mode=Mode.BM25)) == []
    # hybrid still ranks every tool: BM25 is one signal among three there
    assert len(engine.retrieve_tools(RetrieveRequest("zzyzx qwv", k=4))) == 4


def test_bm25_field_holds_usage_queries(engine):
    def bm25_ids(engine, query):
        return [h.tool_id for h in engine.retrieve_tools(RetrieveRequest(query, k=4, mode=Mode.BM25))]

    assert bm25_ids(engine, "umbrella") == ["weather"]  # only a weather usage query says "umbrella"
    assert bm25_ids(engine, "tagine") == []
    engine.record_usage([("a tagine for six people", ["recipes"])])
    assert bm25_ids(engine, "tagine") == ["recipes"]
    assert len(engine.signals._lexical_index()) == len(engine.signals.ids)  # re-added, not duplicated
    reopened = ToolEngine(engine.data_dir, engine.signals.encoder)
    assert bm25_ids(reopened, "tagine") == ["recipes"]


def test_filters_and_batch(engine):
    hits = engine.retrieve_tools(RetrieveRequest("share price of Microsoft", k=4, namespace="home"))
    assert {h.tool_id for h in hits} == {"weather", "recipes"}
    hits = engine.retrieve_tools(RetrieveRequest("anything", k=4, tags=("outdoor",)))
    assert [h.tool_id for h in hits] == ["weather"]
    batch = engine.retrieve_tools_batch(
        [
            RetrieveRequest("translate hello to German", k=1),
            RetrieveRequest("soup recipe", k=1, mode=Mode.BM25),
        ]
    )
    assert [b[0].tool_id for b in batch] == ["translate", "recipes"]


def test_bad_requests(engine, tmp_path, encoder):
    with pytest.raises(InvalidArgument, match="k=0"):
        engine.retrieve_tools(RetrieveRequest("weather", k=0))
    with pytest.raises(InvalidArgument, match="query is empty"):
        engine.retrieve_tools(RetrieveRequest("  ", k=3))
    empty = ToolEngine(tmp_path / "empty", encoder)
    with pytest.raises(FailedPrecondition, match="catalogue is empty"):
        empty.retrieve_tools(RetrieveRequest("weather", k=3))
    with pytest.raises(FailedPrecondition, match="no usage"):
        empty.train_classifier()


def test_incremental_changes(engine):
    engine.upsert_tools(
        [Tool(id="flights", name="FlightSearch", description="Search airline flights and fares.")]
    )
    assert engine.retrieve_tools(RetrieveRequest("cheap flight to Rome", k=1))[0].tool_id == "flights"
    engine.delete_tools(["flights"])
    assert "flights" not in engine.signals.ids


def test_mlc_goes_stale_when_catalogue_changes(engine):
    losses = engine.train_classifier(epochs=40)
    assert losses[-1] < losses[0]
    hits = engine.retrieve_tools(RetrieveRequest("is it going to rain in Rome", k=2, classifier=True))
    assert hits[0].tool_id == "weather" and 0.0 <= hits[0].probability <= 1.0
    engine.upsert_tools([Tool(id="flights", name="FlightSearch", description="Search airline flights.")])
    with pytest.raises(FailedPrecondition, match="classifier is stale"):
        engine.retrieve_tools(RetrieveRequest("is it going to rain in Rome", k=2, classifier=True))
    # default-on classifier switches itself off; the catalogue is intact
    engine.retriever.classifier_default = True
    hits = engine.retrieve_tools(RetrieveRequest("is it going to rain in Rome", k=5))
    assert hits[0].tool_id == "weather" and hits[0].probability is None
    assert len(engine.list_tools()) == 5


def test_refiner_and_set_mode(engine):
    losses = engine.train_refiner(epochs=30, candidates=4)
    assert losses[-1] < losses[0]
    hits = engine.retrieve_tools(RetrieveRequest("what will the weather be in Rome", k=4, rerank=True))
    assert len(hits) == 4 and all(0 <= h.probability <= 1 for h in hits)
    chosen = engine.retrieve_tools(
        RetrieveRequest(
            "what will the weather be in Rome",
            k=4,
            rerank=True,
            set_mode=SetOptions(threshold=0.99, max_tools=3),
        )
    )
    assert 1 <= len(chosen) <= 3
    everything = engine.retrieve_tools(
        RetrieveRequest("weather", k=4, set_mode=SetOptions(threshold=-1.0, max_tools=2))
    )
    assert len(everything) == 2
