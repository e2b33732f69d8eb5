"""ToolsService through a real server: every RPC, bad input (status, catalogue intact), QTA rewriting with
its timeout, second stages, and `tools eval` through a running server."""

import json
from dataclasses import asdict, replace

import grpc
import pytest
from test_tools_retrieval import TOOLS as ENGINE_TOOLS
from test_tools_retrieval import USAGE as ENGINE_USAGE

from ferret.client import Client
from ferret.proto.ferret.v1 import tools_pb2 as pb
from ferret.proto.ferret.v1 import tools_pb2_grpc as pb_grpc
from ferret.server.app import ServerThread
from ferret.server.config import ConfigError, parse_config
from ferret.tools.catalogue import Tool
from ferret.tools.qta import GenerationSettings, QueryRewriter
from ferret.tools.retriever import DEFAULT_WEIGHTS, Mode, RetrieveRequest, SetOptions

# The engine tests' catalogue, one tool with example queries and a version, and a two-tool usage record.
TOOLS = [replace(ENGINE_TOOLS[0], examples=("rain tomorrow?",), version="1"), *ENGINE_TOOLS[1:]]
USAGE = [*ENGINE_USAGE, ("the Italian words in a pasta recipe", ["recipes", "translate"])]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_lm):
    """A server whose [tools] table configures the QTA rewriter (the tiny random LM)."""
    config = parse_config(
        {
            "server": {"port": 0, "data_dir": str(tmp_path_factory.mktemp("tools-server"))},
            "tools": {"rewriter": str(tiny_lm), "rewrite_timeout_s": 60, "rewrite_max_new_tokens": 8},
        }
    )
    server = ServerThread(config).start()
    server.wait_ready()
    yield server
    server.stop(grace=1)


@pytest.fixture(scope="module")
def client(server):
    with Client(server.address) as client:
        yield client


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.address)
    yield pb_grpc.ToolsServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def catalogue(client):
    written = client.upsert_tools(TOOLS)
    assert written.count == 4
    client.record_usage(USAGE)
    return written.catalogue_version


def runtime(server):
    return server.server.state.tools


def status(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_empty_catalogue_is_failed_precondition(client):
    # runs first in this module (before the `catalogue` fixture fills it)
    code, details = status(lambda: client.retrieve_tools("will it rain", k=3))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "catalogue is empty" in details


def test_upsert_list_delete_and_versions(client, catalogue):
    listed = client.list_tools()
    assert listed.catalogue_version == catalogue and [t.id for t in listed.tools] == sorted(t.id for t in TOOLS)
    weather = next(t for t in listed.tools if t.id == "weather")
    assert weather == TOOLS[0]  # parameters, tags, examples, namespace and version round-trip
    assert [t.id for t in client.list_tools(namespace="home").tools] == ["recipes", "weather"]
    assert [t.id for t in client.list_tools(namespace="home", tags=["outdoor"]).tools] == ["weather"]
    assert [t.id for t in client.list_tools(namespace="").tools] == ["translate"]

    added = client.upsert_tools([{"id": "flights", "name": "FlightSearch", "description": "Search airline flights.",
                                  "parameters": '{"type": "object", "properties": {"to": {"type": "string"}}}'}])
    assert added.catalogue_version == catalogue + 1
    assert client.list_tools().tools[0].parameters["properties"] == {"to": {"type": "string"}}
    hit = client.retrieve_tools("book a plane ticket to Oslo", k=1, mode="description").hits[0]
    assert hit.tool_id == "flights"
    deleted = client.delete_tools(["flights"])
    assert (deleted.catalogue_version, deleted.count) == (catalogue + 2, 1)
    assert "flights" not in {t.id for t in client.list_tools().tools}


def test_retrieve_modes_signals_and_filters(client, catalogue):
    for mode in Mode:
        result = client.retrieve_tools("is it going to rain in Rome", k=2, mode=mode)
        assert result.hits[0].tool_id == "weather", mode
        assert result.catalogue_version == client.list_tools().catalogue_version
        assert result.query == "is it going to rain in Rome" and not result.rewritten
    hybrid = client.retrieve_tools("is it going to rain in Rome", k=4).hits
    # hybrid reports the signals it fuses: those with a non-zero default weight
    weighted = {name for name, weight in asdict(DEFAULT_WEIGHTS).items() if weight}
    assert set(hybrid[0].signals) == weighted and "tool2vec" in weighted
    assert hybrid[0].probability is None
    scores = [h.score for h in hybrid]
    assert scores == sorted(scores, reverse=True) and len(hybrid) == 4
    filtered = client.retrieve_tools("is it going to rain in Rome", k=4, namespace="finance").hits
    assert [h.tool_id for h in filtered] == ["stocks"]
    tagged = client.retrieve_tools("cook dinner", k=4, tags=["outdoor"]).hits
    assert [h.tool_id for h in tagged] == ["weather"]
    chosen = client.retrieve_tools("weather", k=4, set_mode=SetOptions(threshold=-1.0, max_tools=2)).hits
    assert len(chosen) == 2


def test_batch_matches_single_calls(client, catalogue):
    requests = [
        RetrieveRequest("what is Apple trading at today", k=3),
        RetrieveRequest("say hello in French", k=2, mode=Mode.TOOL2VEC),
        RetrieveRequest("pasta recipe", k=1, mode=Mode.BM25, namespace="home"),
    ]
    batch = client.retrieve_tools_batch(requests)
    assert [len(r.hits) for r in batch] == [3, 2, 1]
    for request, result in zip(requests, batch, strict=True):
        single = client.retrieve_tools(request.query, request.k, request.mode, namespace=request.namespace)
        assert [h.tool_id for h in result.hits] == [h.tool_id for h in single.hits]
        assert [h.score for h in result.hits] == pytest.approx([h.score for h in single.hits], rel=1e-5)
    assert batch[0].hits[0].tool_id == "stocks" and batch[1].hits[0].tool_id == "translate"


def test_record_usage_moves_tool2vec(client, catalogue):
    query = "convert 30 euros into yen"  # no tool is about currencies; usage teaches it
    before = {h.tool_id: h.signals["tool2vec"] for h in client.retrieve_tools(query, k=5, mode="tool2vec").hits}
    recorded = client.record_usage([("exchange rate euro to yen", ["stocks"]), ("euros in dollars", ["stocks"])])
    assert recorded.count == 2
    after = {h.tool_id: h.signals["tool2vec"] for h in client.retrieve_tools(query, k=5, mode="tool2vec").hits}
    assert after["stocks"] > before["stocks"] and after["weather"] == pytest.approx(before["weather"], abs=1e-6)


def test_bad_input_statuses_keep_the_catalogue(server, client, stub, catalogue):
    snapshot = client.list_tools()
    usage_before = runtime(server).engine.signals.usage_count.tolist()
    not_found, invalid, failed = (
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    bad_json = pb.UpsertToolsRequest(tools=[pb.Tool(id="x", name="X", description="x", parameters_json="{type:")])
    not_object = {"id": "x", "name": "X", "description": "x", "parameters": "[1, 2]"}
    cases = {  # name: (call, status, a fragment of the message)
        "unknown usage id": (lambda: client.record_usage([("q", ["weather", "nope"])]), not_found, "nope"),
        "duplicate ids": (lambda: client.upsert_tools([TOOLS[1], TOOLS[1]]), invalid, "appears twice"),
        "schema not JSON": (lambda: stub.UpsertTools(bad_json), invalid, "not valid JSON"),
        "schema not an object": (lambda: client.upsert_tools([not_object]), invalid, "must be a JSON object"),
        "k = 0": (lambda: client.retrieve_tools("rain", k=0), invalid, "k=0"),
        "k = 0 in a batch": (
            lambda: client.retrieve_tools_batch([RetrieveRequest("rain", 2), RetrieveRequest("x", 0)]),
            invalid,
            "k=0",
        ),
        "unknown delete id": (lambda: client.delete_tools(["weather", "nope"]), not_found, "nope"),
        "empty query": (lambda: client.retrieve_tools("  ", k=3), invalid, "query is empty"),
        "unknown mode": (
            lambda: stub.RetrieveTools(pb.RetrieveToolsRequest(query="rain", k=3, mode=99)),
            invalid,
            "unknown retrieval mode",
        ),
        "no usage": (lambda: client.record_usage([]), invalid, "1.."),
        "no tools": (lambda: client.upsert_tools([]), invalid, "1.."),
        "no trained refiner": (lambda: client.retrieve_tools("rain", k=3, rerank=True), failed, "train-refiner"),
    }
    for name, (call, expected_code, fragment) in cases.items():
        code, details = status(call)
        assert code == expected_code and fragment in details, (name, code, details)
    assert client.list_tools() == snapshot  # same tools, same catalogue version
    assert runtime(server).engine.signals.usage_count.tolist() == usage_before  # no partial usage record


def test_stale_classifier_asked_for_explicitly(server, client, catalogue):
    engine = runtime(server).engine
    engine.train_classifier(epochs=40)  # what `ferret tools train-mlc` does on the server's data dir
    hits = client.retrieve_tools("is it going to rain in Rome", k=2, classifier=True).hits
    assert hits[0].tool_id == "weather" and 0.0 <= hits[0].probability <= 1.0
    version = client.upsert_tools([Tool(id="flights", name="FlightSearch", description="Search flights.")])
    code, details = status(lambda: client.retrieve_tools("rain in Rome", k=2, classifier=True))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "classifier is stale" in details
    unset = client.retrieve_tools("rain in Rome", k=2)  # the server default (off) still answers
    assert unset.hits[0].tool_id == "weather" and unset.catalogue_version == version.catalogue_version
    client.delete_tools(["flights"])


def test_refiner_probabilities(server, client, catalogue):
    runtime(server).engine.train_refiner(epochs=20, candidates=4)
    hits = client.retrieve_tools("what will the weather be in Rome", k=4, rerank=True).hits
    assert len(hits) == 4 and all(0.0 <= h.probability <= 1.0 for h in hits)
    assert [h.score for h in hits] == [h.probability for h in hits]


def test_qta_rewrite_and_timeout(server, client, catalogue, tiny_lm):
    query = "will it rain tomorrow in Rome"
    result = client.retrieve_tools(query, k=3, rewrite=True)
    assert result.rewritten and result.query != query and result.query.strip()
    assert len(result.hits) == 3 and not result.rewrite_note
    live = runtime(server)
    configured = live.rewriter
    try:
        live.rewriter = QueryRewriter(tiny_lm, settings=GenerationSettings(max_new_tokens=128), timeout_s=1e-4)
        timed_out = client.retrieve_tools(query, k=3, rewrite=True)
        assert not timed_out.rewritten and timed_out.query == query and "longer than" in timed_out.rewrite_note
        plain = client.retrieve_tools(query, k=3)
        assert [h.tool_id for h in timed_out.hits] == [h.tool_id for h in plain.hits]
        live.rewriter = None
        code, details = status(lambda: client.retrieve_tools(query, k=3, rewrite=True))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "[tools] rewriter" in details
    finally:
        live.rewriter = configured


def test_bad_tools_config_stops_the_server(tmp_path):
    config = parse_config({"server": {"port": 0, "data_dir": str(tmp_path)}, "tools": {"rewrite_timeout": 1}})
    with pytest.raises(ConfigError, match=r"\[tools\]: unknown keys \['rewrite_timeout'\]"):
        ServerThread(config, ["ferret.server.tools_service"]).start()


def test_generic_eval_through_a_running_server(ferret_server, minilm_registry, tmp_path, capsys):
    from ferret.cli import main
    from ferret.tools.cli import run_eval

    tools = [
        {"id": "w", "name": "Weather", "description": "weather forecast for a city"},
        {"id": "s", "name": "Stocks", "description": "share prices of companies",
         "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}}}},
        {"id": "t", "name": "Translate", "description": "translate text into another language"},
        {"id": "c", "name": "Calendar", "description": "create and list calendar events"},
    ]
    train = [
        {"query": "will it rain in Rome", "tools": ["w"]},
        {"query": "Apple share price", "tools": ["s"]},
        {"query": "say hello in French", "tools": ["t"]},
        {"query": "add a meeting on Monday", "tools": ["c"]},
    ]
    test = [
        {"query": "is it sunny in Madrid tomorrow", "tools": ["w"]},
        {"query": "weather and stock price of Tesla", "tools": ["w", "s"]},
        {"query": "put lunch with Anna in my agenda", "tools": ["c"]},
    ]
    root = tmp_path / "data"
    root.mkdir()
    for name, rows in (("tools", tools), ("train", train), ("test", test)):
        (root / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["tools", "eval", str(root), "--json", "--address", ferret_server.address]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"test"} and set(out["test"]) == {m.value for m in Mode}
    for metrics in out["test"].values():
        assert set(metrics) >= {"recall@1", "recall@5", "ndcg@5", "completeness@5", "completeness@10"}
        assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert out["test"]["hybrid"]["completeness@5"] == 1.0
    # The wire changes nothing: the in-process engine on the same data gives the same metrics.
    encoder = minilm_registry.get("all-MiniLM-L6-v2")
    local, _ = run_eval(root, tmp_path / "local", encoder, second_stages=False)
    for mode, metrics in local["test"].items():
        assert out["test"][mode] == pytest.approx(metrics, abs=1e-6), mode
    with pytest.raises(ValueError, match="--second-stages"):
        main(["tools", "eval", str(root), "--second-stages", "--address", ferret_server.address])


def test_server_without_dense_model_serves_without_tools(tmp_path):
    config = parse_config({"server": {"port": 0, "data_dir": str(tmp_path)}, "models": {"bm25": {"family": "bm25"}}})
    with ServerThread(config) as server, Client(server.address) as client:
        server.wait_ready(timeout=60)
        code, details = status(lambda: client.list_tools())
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "needs a dense model" in details
