"""CollectionsService and SearchService through a real server: every RPC, bad input, aliases, batches."""

import threading

import grpc
import numpy as np
import pytest

from ferret.cli import main
from ferret.client import Client, query_message
from ferret.errors import InvalidArgument
from ferret.indexing.fields import SubSearch
from ferret.indexing.fusion import WeightedSum
from ferret.proto.ferret.v1 import collections_pb2 as pb
from ferret.proto.ferret.v1 import collections_pb2_grpc as pb_grpc
from ferret.server.app import ServerThread
from ferret.server.config import parse_config

SCHEMA = {
    "dense": [{"name": "v", "encoder": "precomputed", "dim": 4}],
    "sparse": [{"name": "text", "encoder": "bm25"}, {"name": "s", "encoder": "precomputed"}],
}
WORDS = ["apple", "banana", "cherry", "durian", "elderberry", "fig"]


def vector(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(4).astype(np.float32)


def doc(i: int) -> dict:
    return {
        "id": f"d{i}",
        "text": f"{WORDS[i % 6]} pie number {i}",
        "metadata": {"i": i, "even": i % 2 == 0},
        "vectors": {"v": vector(i), "s": ([i, 100 + i % 3], [1.0, 0.5])},
    }


def start(data_dir) -> ServerThread:
    config = parse_config({"server": {"port": 0, "data_dir": str(data_dir)}, "models": {"bm25": {"family": "bm25"}}})
    server = ServerThread(config).start()
    server.wait_ready(timeout=60)
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start(tmp_path_factory.mktemp("collections"))
    yield server
    server.stop(grace=1)


@pytest.fixture(scope="module")
def client(server):
    with Client(server.address) as client:
        client.create_collection("docs", SCHEMA)
        client.upsert("docs", [doc(i) for i in range(12)])
        yield client


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.address)
    yield pb_grpc.CollectionsServiceStub(channel), pb_grpc.SearchServiceStub(channel)
    channel.close()


def ids(result) -> list[str]:
    return [h.id for h in result.hits]


def test_collection_lifecycle_and_documents(client):
    info = client.create_collection("tmp", SCHEMA)
    assert (info.name, info.version, info.count) == ("tmp", 0, 0)
    assert [f.name for f in info.schema.sparse] == ["s", "text"] and info.schema.dense[0].dim == 4
    written = client.upsert("tmp", [doc(1), doc(2), doc(3)])
    assert (written.collection, written.version, written.count) == ("tmp", 1, 3)
    got = client.get("tmp", ["d2", "nope", "d1"], with_vectors=True)
    assert [d.id for d in got.documents] == ["d2", "d1"] and got.missing_ids == ["nope"] and got.version == 1
    assert got.documents[0].metadata == {"i": 2, "even": True}
    np.testing.assert_array_equal(got.documents[0].vectors["v"], vector(2))
    np.testing.assert_array_equal(got.documents[0].vectors["s"].indices, [2, 102])
    assert client.get("tmp", ["d1"]).documents[0].vectors == {}
    assert client.count("tmp") == 3 and client.count("tmp", {"must": [{"key": "even", "match": True}]}) == 1
    deleted = client.delete("tmp", ["d1", "d1", "absent"])
    assert (deleted.version, deleted.count) == (2, 1) and client.count("tmp") == 2
    assert {c.name for c in client.list_collections()} >= {"docs", "tmp"}
    assert client.get_collection("tmp").count == 2
    client.drop_collection("tmp")
    with pytest.raises(grpc.RpcError) as err:
        client.get_collection("tmp")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_query_sources_filter_fusion_and_paging(client):
    searches = [
        SubSearch("text", text="cherry pie"),
        SubSearch("v", vector=vector(2)),
        SubSearch("s", vector=([2], [1.0])),
    ]
    result = client.query("docs", searches, limit=3, with_text=True, with_metadata=True)
    assert result.collection == "docs" and result.version == client.get_collection("docs").version
    top = result.hits[0]
    assert top.id == "d2" and set(top.sources) == {"text", "v", "s"}
    assert all(s.rank == 1 for s in top.sources.values())
    assert top.text.startswith("cherry") and top.metadata == {"i": 2, "even": True}
    # BM25 alone: both cherry documents, scores descending
    bm25 = client.query("docs", [SubSearch("text", text="cherry")])
    assert set(ids(bm25)) == {"d2", "d8"} and bm25.hits[0].score >= bm25.hits[1].score
    # a filter admits only odd documents; offset pages
    odd = client.query(
        "docs", [SubSearch("v", vector=vector(3))], limit=12, filter={"must_not": [{"key": "even", "match": True}]}
    )
    assert ids(odd)[0] == "d3" and all(int(i[1:]) % 2 for i in ids(odd)) and len(odd.hits) == 6
    page = client.query(
        "docs",
        [SubSearch("v", vector=vector(3))],
        limit=2,
        offset=2,
        filter={"must": [{"key": "i", "any": [1, 3, 5, 7, 9, 11]}]},
    )
    assert ids(page) == ids(odd)[2:4]
    weighted = client.query("docs", searches, fusion=WeightedSum("z-score"), limit=1)
    assert ids(weighted) == ["d2"]


def test_batch_query_matches_single_queries(client, stub):
    queries = [query_message("docs", [SubSearch("text", text=w)], limit=3) for w in ("apple", "fig")]
    batch = client.batch_query(queries)
    single = [client.query("docs", [SubSearch("text", text=w)], limit=3) for w in ("apple", "fig")]
    assert [ids(r) for r in batch] == [ids(r) for r in single] and ids(batch[0])[0] in ("d0", "d6")
    bad = [queries[0], query_message("missing", [SubSearch("text", text="x")])]
    with pytest.raises(grpc.RpcError) as err:
        client.batch_query(bad)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and err.value.details().startswith("query 1:")


def _upsert(documents):
    return lambda s: s[0].Upsert(pb.UpsertRequest(collection="docs", documents=documents))


def _query(**fields):
    search = fields.pop("search", pb.SubSearch(field="text", text="apple"))
    return lambda s: s[1].Query(pb.QueryRequest(collection="docs", searches=[search], **fields))


def _dense(values, id_="new"):
    return pb.Document(
        id=id_,
        text="x",
        dense={"v": pb.DenseVector(values=np.asarray(values, "<f4").tobytes())},
        sparse={"s": pb.SparseVector(indices=np.array([1], "<u4").tobytes(), values=np.array([1], "<f4").tobytes())},
    )


def _sparse(indices: bytes, values: bytes):
    message = _dense(np.ones(4))
    message.sparse["s"].CopyFrom(pb.SparseVector(indices=indices, values=values))
    return message


BAD_REQUESTS = {
    "unknown collection": (
        lambda s: s[0].Upsert(pb.UpsertRequest(collection="nope", documents=[_dense(np.ones(4))])),
        "NOT_FOUND",
        "collection 'nope' does not exist",
    ),
    "unknown query field": (_query(search=pb.SubSearch(field="zzz", text="a")), "NOT_FOUND", "unknown field 'zzz'"),
    "wrong dimension": (_upsert([_dense(np.ones(3))]), "INVALID_ARGUMENT", "dimension 4"),
    "NaN": (_upsert([_dense([1, np.nan, 0, 0])]), "INVALID_ARGUMENT", "NaN"),
    "dense bytes": (
        _upsert([pb.Document(id="x", dense={"v": pb.DenseVector(values=b"12345")})]),
        "INVALID_ARGUMENT",
        "multiple of 4",
    ),
    "sparse bytes": (_upsert([_sparse(b"123", b"")]), "INVALID_ARGUMENT", "multiple of 4"),
    "sparse lengths": (
        _upsert([_sparse(np.array([1, 2], "<u4").tobytes(), np.ones(1, "<f4").tobytes())]),
        "INVALID_ARGUMENT",
        "2 indices but 1 values",
    ),
    "unsorted sparse": (
        _upsert([_sparse(np.array([5, 2], "<u4").tobytes(), np.ones(2, "<f4").tobytes())]),
        "INVALID_ARGUMENT",
        "strictly increasing",
    ),
    "duplicate ids": (_upsert([_dense(np.ones(4), "a"), _dense(np.ones(4), "a")]), "INVALID_ARGUMENT", "unique"),
    "vector for bm25 field": (
        _upsert([pb.Document(id="x", dense={"text": pb.DenseVector(values=b"")})]),
        "INVALID_ARGUMENT",
        "text",
    ),
    "bad filter": (
        _query(filter=pb.Filter(must=[pb.Condition(key="i", range=pb.Range())])),
        "INVALID_ARGUMENT",
        "at least one of gt",
    ),
    "limit 0": (_query(limit=0), "INVALID_ARGUMENT", "limit must be"),
    "limit huge": (_query(limit=1_000_000), "INVALID_ARGUMENT", "at most 10000"),
    "sub-search limit 0": (
        _query(search=pb.SubSearch(field="text", text="a", limit=0)),
        "INVALID_ARGUMENT",
        "limit of sub-search",
    ),
    "text on precomputed": (_query(search=pb.SubSearch(field="v", text="a")), "INVALID_ARGUMENT", "precomputed"),
    "encoder mismatch": (
        _query(search=pb.SubSearch(field="text", text="a", encoder="splade")),
        "FAILED_PRECONDITION",
        "cannot be queried with encoder 'splade'",
    ),
    "empty upsert": (_upsert([]), "INVALID_ARGUMENT", "at least one document"),
    "alias to nothing": (
        lambda s: s[0].UpdateAliases(
            pb.UpdateAliasesRequest(
                operations=[
                    pb.AliasOperation(create=pb.CreateAlias(alias="ok", collection="docs")),
                    pb.AliasOperation(create=pb.CreateAlias(alias="bad", collection="nope")),
                ]
            )
        ),
        "NOT_FOUND",
        "nope",
    ),
    "bad schema": (
        lambda s: s[0].CreateCollection(
            pb.CreateCollectionRequest(
                name="x", schema=pb.CollectionSchema(dense={"v": pb.DenseFieldConfig(encoder="precomputed")})
            )
        ),
        "INVALID_ARGUMENT",
        "give its dimension",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_their_status_and_leave_the_store_intact(client, stub, case):
    call, code, message = BAD_REQUESTS[case]
    before = client.get_collection("docs")
    aliases = client.list_aliases()
    with pytest.raises(grpc.RpcError) as err:
        call(stub)
    assert err.value.code().name == code and message in err.value.details(), err.value.details()
    after = client.get_collection("docs")
    assert (after.version, after.count) == (before.version, before.count)
    assert client.list_aliases() == aliases and "x" not in {c.name for c in client.list_collections()}
    assert ids(client.query("docs", [SubSearch("s", vector=([4], [1.0]))], limit=1)) == ["d4"]


def test_client_refuses_negative_sparse_indices(client):
    with pytest.raises(InvalidArgument, match="non-negative"):
        client.upsert("docs", [{"id": "neg", "vectors": {"v": np.ones(4), "s": ([-1], [1.0])}}])


def test_alias_switch_under_concurrent_queries(server, client):
    for name, word in (("blue", "apple"), ("green", "banana")):
        client.create_collection(name, SCHEMA)
        client.upsert(name, [{**doc(0), "id": f"{name}-doc", "text": word}])
    client.update_aliases({"live": "blue"})
    stop, failures, seen = threading.Event(), [], set()

    def reader():
        with Client(server.address) as own:
            while not stop.is_set():
                try:
                    result = own.query("live", [SubSearch("s", vector=([0], [1.0]))], limit=1)
                    assert ids(result) == [f"{result.collection}-doc"]
                    seen.add(result.collection)
                except Exception as exc:  # noqa: BLE001 - any failure fails the test below
                    failures.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for flip in range(20):
        client.update_aliases({"live": "green" if flip % 2 == 0 else "blue"})
    stop.set()
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    assert seen == {"blue", "green"}
    client.update_aliases({"other": "blue"}, delete_aliases=["live"])
    assert client.list_aliases() == {"other": "blue"} and client.get_collection("other").name == "blue"
    assert client.get_collection("blue").aliases == ["other"]


def test_corrupt_snapshot_is_data_loss(tmp_path):
    server = start(tmp_path)
    with Client(server.address) as client:
        client.create_collection("c", SCHEMA)
        client.upsert("c", [doc(i) for i in range(5)])
    server.stop(grace=1)  # publishes snapshots
    files = [
        p
        for p in (tmp_path / "indexes" / "c").rglob("*")
        if p.is_file() and p.name != "manifest.json" and p.name != "CURRENT"
    ]
    files[0].write_bytes(files[0].read_bytes() + b"corrupt")
    server = start(tmp_path)
    try:
        with Client(server.address) as client:
            with pytest.raises(grpc.RpcError) as err:
                client.query("c", [SubSearch("text", text="apple")])
            assert err.value.code() == grpc.StatusCode.DATA_LOSS
    finally:
        server.stop(grace=1)


def test_cli_index_build_then_serve(tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(f'{{"_id": "c{i}", "title": "t{i}", "text": "{WORDS[i % 6]} tart"}}\n' for i in range(20))
    )
    data = tmp_path / "data"
    args = [
        "index",
        "build",
        str(corpus),
        "--data-dir",
        str(data),
        "--collection",
        "tarts",
        "--bm25",
        "body",
        "--quiet",
        "--batch-size",
        "8",
    ]
    assert main(args) == 0
    assert "20 documents" in capsys.readouterr().out
    assert main(args) == 0  # a finished build re-run is a no-op
    assert "0 added" in capsys.readouterr().out
    assert main(["index", "build", str(corpus), "--data-dir", str(data), "--collection", "x"]) == 1
    assert "at least one field" in capsys.readouterr().err
    server = start(data)
    try:
        with Client(server.address) as client:
            assert client.get_collection("tarts").count == 20
            assert set(ids(client.query("tarts", [SubSearch("body", text="fig")]))) == {"c5", "c11", "c17"}
    finally:
        server.stop(grace=1)
