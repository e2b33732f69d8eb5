"""Tool catalogue: CRUD, durability, bad input, usage sums."""

import numpy as np
import pytest

from ferret.errors import InvalidArgument, NotFound
from ferret.tools.catalogue import Tool, ToolCatalogue

SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "description": "city name"}}}


def tools():
    return [
        Tool(
            id="weather",
            name="WeatherTool",
            description="weather forecast",
            parameters=SCHEMA,
            namespace="home",
            tags=("outdoor",),
            examples=("will it rain",),
            version="1",
        ),
        Tool(id="stocks", name="StockTool", description="share prices", namespace="finance"),
    ]


def test_crud_and_durability(tmp_path):
    cat = ToolCatalogue(tmp_path)
    assert cat.upsert(tools()) == 1
    assert [t.id for t in cat.list()] == ["stocks", "weather"]
    assert [t.id for t in cat.list(namespace="home")] == ["weather"]
    assert [t.id for t in cat.list(tags=["outdoor"])] == ["weather"]
    fingerprint = cat.fingerprint()
    cat.upsert(
        [Tool(id="weather", name="WeatherTool", description="new text", parameters=SCHEMA, version="2")]
    )
    assert cat.get(["weather"])[0].description == "new text"
    assert cat.fingerprint() != fingerprint and cat.version() == 2
    assert cat.delete(["stocks"]) == 3
    cat.close()
    reopened = ToolCatalogue(tmp_path)
    assert [t.id for t in reopened.list()] == ["weather"]
    assert reopened.get(["weather"])[0].parameters == SCHEMA


@pytest.mark.parametrize(
    "bad, message",
    [
        (Tool(id="x", name="X", description="d", parameters="{not json"), "not valid JSON"),
        (Tool(id="x", name="X", description="d", parameters="[1, 2]"), "must be a JSON object"),
        (Tool(id="", name="X", description="d"), "non-empty id"),
        (Tool(id="x", name="X", description=" "), "non-empty description"),
    ],
)
def test_bad_tools_are_rejected_and_catalogue_intact(tmp_path, bad, message):
    cat = ToolCatalogue(tmp_path)
    cat.upsert(tools())
    with pytest.raises(InvalidArgument, match=message):
        cat.upsert([tools()[1], bad])
    assert [t.id for t in cat.list()] == ["stocks", "weather"] and cat.version() == 1


def test_schema_given_as_json_text_is_parsed(tmp_path):
    cat = ToolCatalogue(tmp_path)
    cat.upsert([Tool(id="x", name="X", description="d", parameters='{"type": "object"}')])
    assert cat.get(["x"])[0].parameters == {"type": "object"}


def test_duplicate_ids_in_one_upsert(tmp_path):
    cat = ToolCatalogue(tmp_path)
    with pytest.raises(InvalidArgument, match="appears twice"):
        cat.upsert([tools()[0], tools()[0]])
    assert len(cat) == 0


def test_usage_sums_and_unknown_ids(tmp_path):
    cat = ToolCatalogue(tmp_path)
    cat.upsert(tools())
    a, b = np.array([1, 0, 0], np.float32), np.array([0, 2, 0], np.float32)
    cat.record_usage([("q1", ["weather"]), ("q2", ["weather", "stocks"])], "m", np.stack([a, b]))
    sums = cat.usage_sums("m")
    np.testing.assert_allclose(sums["weather"][0], a + b)
    assert sums["weather"][1] == 2 and sums["stocks"][1] == 1
    with pytest.raises(NotFound, match="unknown tool ids \\['nope'\\]"):
        cat.record_usage([("q3", ["weather", "nope"])], "m", a[None])
    assert cat.usage_sums("m")["weather"][1] == 2  # the failed batch added nothing
    assert [r.query for r in cat.usage("m")] == ["q1", "q2"]
    with pytest.raises(NotFound):
        cat.delete(["stocks", "nope"])
    assert len(cat) == 2
    cat.delete(["stocks"])
    assert [r.tool_ids for r in cat.usage("m")] == [("weather",), ("weather",)]
