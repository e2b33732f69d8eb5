import copy
import threading
from dataclasses import replace

import numpy as np
import pytest

from ferret.encoders.base import EncodeOptions, Side
from ferret.encoders.registry import ModelRegistry
from ferret.errors import AlreadyExists, DataLoss, FailedPrecondition, InvalidArgument, NotFound
from ferret.indexing.collection import CollectionManager, Query, SubSearch
from ferret.indexing.fusion import RRF, WeightedSum
from ferret.indexing.store import Document

MINILM = "all-MiniLM-L6-v2"
TEXTS = {
    "cat": "The cat sat on the warm windowsill and purred.",
    "dog": "A dog chased the ball across the park.",
    "rust": "Rust is a systems programming language focused on memory safety.",
    "python": "Python is a popular programming language for data science.",
    "paris": "Paris is the capital of France, famous for the Eiffel Tower.",
    "berlin": "Berlin is the capital of Germany.",
    "heart": "Aspirin lowers the risk of heart attacks in some patients.",
    "flu": "Influenza vaccines reduce hospital admissions in winter.",
}
SCHEMA = {
    "dense": [
        {"name": "text", "encoder": MINILM},
        {"name": "tag", "encoder": "precomputed", "dim": 4, "metric": "ip"},
    ]
}


def tag_vector(i):
    v = np.zeros(4, np.float32)
    v[i % 4] = 1.0
    return v


def documents():
    return [
        Document(key, text, {"topic": key, "i": i, "even": i % 2 == 0}, {"tag": tag_vector(i)})
        for i, (key, text) in enumerate(TEXTS.items())
    ]


def _manager(directory, registry):
    m = CollectionManager(directory, registry)
    m.create("docs", SCHEMA).upsert(documents())
    return m


@pytest.fixture(scope="module")
def shared(tmp_path_factory, minilm_registry):
    """One collection for the tests that leave it unchanged (encoding is the slow part)."""
    m = _manager(tmp_path_factory.mktemp("shared"), minilm_registry)
    yield m
    m.close(snapshot=False)


@pytest.fixture
def manager(tmp_path, minilm_registry):
    m = _manager(tmp_path / "data", minilm_registry)
    yield m
    m.close(snapshot=False)


def ids(result):
    return [h.id for h in result.hits]


def text_query(text, **kw):
    return Query([SubSearch("text", text=text)], **kw)


def test_dense_text_search_finds_the_right_documents(shared):
    docs = shared.get("docs")
    assert docs.count() == 8 and docs.version == 1
    assert docs.schema.dense[0].dim == 384
    result = docs.query(
        text_query("which city is the capital of France", limit=3, with_text=True, with_metadata=True)
    )
    assert result.version == 1 and ids(result)[0] == "paris"
    top = result.hits[0]
    assert top.text == TEXTS["paris"] and top.metadata == {"topic": "paris", "i": 4, "even": True}
    assert top.sources["text"].rank == 1 and top.score == pytest.approx(top.sources["text"].score)
    assert 0.3 < top.score <= 1.0  # cosine
    assert ids(docs.query(text_query("programming languages", limit=2))) in (
        ["rust", "python"],
        ["python", "rust"],
    )
    assert docs.query(text_query("pets")).hits[0].text is None


def test_hybrid_fusion_keeps_per_source_scores_and_ranks(shared):
    docs = shared.get("docs")
    searches = [
        SubSearch("text", text="capital city of Germany", limit=8),
        SubSearch("tag", vector=tag_vector(1), limit=8, weight=0.5, name="tags"),
    ]
    rrf = docs.query(Query(searches, fusion=RRF(k=60), limit=8))
    assert len(rrf.hits) == 8
    for hit in rrf.hits:
        expected = sum(
            w / (60 + hit.sources[n].rank) for n, w in (("text", 1.0), ("tags", 0.5)) if n in hit.sources
        )
        assert hit.score == pytest.approx(expected)
    assert rrf.hits[0].id == "berlin"  # first for text, and tag 1 (i = 5) matches too
    weighted = docs.query(Query(searches, fusion=WeightedSum("min-max"), limit=3))
    assert weighted.hits[0].id == "berlin" and weighted.hits[0].score == pytest.approx(1.5)


def test_filters_limit_offset(shared):
    docs = shared.get("docs")
    q = {"must": [{"key": "even", "match": True}]}
    full = docs.query(text_query("animals", filter=q, limit=4))
    assert set(ids(full)) == {"cat", "rust", "paris", "heart"}
    page1 = docs.query(text_query("animals", filter=q, limit=2))
    page2 = docs.query(text_query("animals", filter=q, limit=2, offset=2))
    assert ids(page1) + ids(page2) == ids(full)
    assert ids(docs.query(text_query("animals", filter={"must": [{"key": "i", "range": {"gte": 6}}]}))) in (
        ["heart", "flu"],
        ["flu", "heart"],
    )
    assert docs.query(text_query("x", filter={"must": [{"key": "topic", "match": "none"}]})).hits == []


def test_upsert_replace_and_delete_are_searchable_at_once(manager):
    docs = manager.get("docs")
    result = docs.upsert(
        [Document("paris", "Bananas are yellow tropical fruit.", {}, {"tag": tag_vector(0)})]
    )
    assert result.version == 2 and docs.count() == 8
    top = docs.query(text_query("yellow fruit", limit=1, with_text=True))
    assert top.version == 2 and ids(top) == ["paris"] and top.hits[0].text.startswith("Bananas")
    assert "paris" not in ids(docs.query(text_query("capital of France", limit=2)))
    docs.delete(["berlin", "nothing"])
    assert docs.count() == 7 and docs.version == 3
    assert "berlin" not in ids(docs.query(text_query("capital of Germany", limit=7)))


def test_restart_loads_snapshot_and_catches_up(tmp_path, minilm_registry):
    m = CollectionManager(tmp_path / "d", minilm_registry)
    m.create("docs", SCHEMA).upsert(documents())
    m.update_aliases({"live": "docs"})
    before = m.get("docs").query(text_query("capital", limit=8))
    m.close()  # snapshot at version 1
    m = CollectionManager(tmp_path / "d", minilm_registry)
    docs = m.get("live")
    assert docs.version == 1 and ids(docs.query(text_query("capital", limit=8))) == ids(before)
    docs.upsert([Document("rome", "Rome is the capital of Italy.", {}, {"tag": tag_vector(0)})])
    docs.delete(["paris"])
    m.close(snapshot=False)  # the store is ahead of the snapshot: the next open replays versions 2..3
    m = CollectionManager(tmp_path / "d", minilm_registry)
    docs = m.get("docs")
    assert docs.version == 3 and len(docs._fields["text"]) == 8
    found = ids(docs.query(text_query("capital of Italy", limit=8)))
    assert found[0] == "rome" and "paris" not in found
    m.close(snapshot=False)


def test_corrupt_snapshot_is_data_loss_until_rebuilt(tmp_path, minilm_registry):
    m = CollectionManager(tmp_path / "d", minilm_registry)
    m.create("docs", SCHEMA).upsert(documents())
    manifest = m.get("docs").snapshot()
    m.close(snapshot=False)
    target = manifest.directory / "text" / "dense.faiss"
    raw = bytearray(target.read_bytes())
    raw[-5] ^= 0x01
    target.write_bytes(bytes(raw))
    m = CollectionManager(tmp_path / "d", minilm_registry)
    with pytest.raises(DataLoss, match="checksum mismatch"):
        m.get("docs")
    assert m.list() == ["docs"]
    docs = m.rebuild("docs")
    assert docs.count() == 8 and ids(docs.query(text_query("capital of France", limit=1))) == ["paris"]
    m.close(snapshot=False)


def test_other_encoder_is_failed_precondition(tmp_path, minilm_registry):
    m = CollectionManager(tmp_path / "d", minilm_registry)
    m.create("docs", SCHEMA).upsert(documents())
    with pytest.raises(FailedPrecondition, match="indexed with encoder"):
        m.get("docs").query(Query([SubSearch("text", text="x", encoder="bm25")]))
    m.close()
    impostor = copy.copy(minilm_registry.get(MINILM))
    impostor.info = replace(impostor.info, family="some-other-family")
    m = CollectionManager(tmp_path / "d", ModelRegistry({MINILM: impostor}))
    docs = m.get("docs")
    with pytest.raises(FailedPrecondition, match="rebuild the collection"):
        docs.query(text_query("capital"))
    with pytest.raises(FailedPrecondition):
        docs.upsert([Document("new", "text", {}, {"tag": tag_vector(0)})])
    assert docs.count() == 8
    # a vector query needs no encoder and still works
    vector = minilm_registry.get(MINILM).embed(["capital of France"], EncodeOptions(side=Side.QUERY))[0]
    assert ids(docs.query(Query([SubSearch("text", vector=vector)], limit=1))) == ["paris"]
    m.close(snapshot=False)


@pytest.mark.parametrize(
    "query, message",
    [
        (Query([SubSearch("tag", vector=[1.0, 2.0])]), "dimension 4"),
        (Query([SubSearch("tag", vector=[np.nan, 0, 0, 0])]), "NaN"),
        (Query([SubSearch("tag", text="hello")]), "precomputed"),
        (Query([SubSearch("text", text="x", vector=[1.0])]), "exactly one of text or vector"),
        (Query([SubSearch("text")]), "exactly one of text or vector"),
        (Query([SubSearch("text", text="x")], limit=0), "limit must be"),
        (Query([SubSearch("text", text="x")], limit=10**9), "limit must be"),
        (Query([SubSearch("text", text="x")], offset=-1), "offset must be"),
        (Query([SubSearch("text", text="x", limit=0)]), "limit of sub-search"),
        (Query([]), "1..16 sub-searches"),
        (Query([SubSearch("text", text="x"), SubSearch("text", text="y")]), "names must be unique"),
        (Query([SubSearch("text", text="x", weight=-1)]), "weight"),
        (Query([SubSearch("text", text="x")], filter={"must": [{"key": "i", "range": {}}]}), "at least one"),
    ],
)
def test_bad_queries(shared, query, message):
    with pytest.raises(InvalidArgument, match=message):
        shared.get("docs").query(query)


def test_unknown_query_field_is_not_found(shared):
    with pytest.raises(NotFound, match="unknown field 'nope'"):
        shared.get("docs").query(Query([SubSearch("nope", text="x")]))


def test_count_with_a_filter(shared):
    docs = shared.get("docs")
    everything = docs.count()
    some = docs.count({"must": [{"key": "i", "range": {"lt": 3}}]})
    rest = docs.count({"must_not": [{"key": "i", "range": {"lt": 3}}]})
    assert 0 < some < everything and some + rest == everything


def test_bad_writes_leave_the_collection_intact(shared):
    docs = shared.get("docs")
    good = Document("new", "text", {}, {"tag": tag_vector(0)})
    for bad, message in [
        ([good, good], "unique within a batch"),
        ([good, Document("x", "t", {}, {"tag": [1.0, 2.0]})], "dimension 4"),
        ([good, Document("x", "t", {}, {"tag": [np.inf, 0, 0, 0]})], "NaN or infinity"),
        ([Document("x", "t", {}, {"tag": tag_vector(0), "text": np.zeros(384)})], "computed by encoder"),
        ([], "at least one document"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            docs.upsert(bad)
    assert docs.count() == 8 and docs.version == 1 and len(docs._fields["text"]) == 8
    with pytest.raises(NotFound):
        shared.get("missing")
    with pytest.raises(AlreadyExists):
        shared.create("docs", SCHEMA)
    with pytest.raises(InvalidArgument, match="metric"):
        shared.create("other", {"dense": [{"name": "v", "dim": 2, "metric": "manhattan"}]})
    with pytest.raises(InvalidArgument, match="leave dim out"):
        shared.create("other", {"dense": [{"name": "v", "encoder": MINILM, "dim": 768}]})
    with pytest.raises(InvalidArgument, match="is dense"):
        shared.create("other", {"sparse": [{"name": "s", "encoder": MINILM}]})
    with pytest.raises(NotFound, match="unknown model"):
        shared.create("other", {"dense": [{"name": "v", "encoder": "no-such-model"}]})
    assert shared.list() == ["docs"]


def test_aliases_switch_atomically_and_drop(manager):
    manager.create("docs2", SCHEMA).upsert(documents()[:2])
    manager.update_aliases({"live": "docs"})
    assert manager.get("live").count() == 8
    seen, stop = set(), threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(manager.get("live").count())

    thread = threading.Thread(target=reader)
    thread.start()
    manager.update_aliases({"live": "docs2"})
    stop.set()
    thread.join()
    assert seen <= {8, 2} and manager.get("live").count() == 2
    manager.drop("docs2")
    assert manager.aliases() == {} and manager.list() == ["docs"]
    with pytest.raises(NotFound):
        manager.get("live")


def test_concurrent_queries_during_writes(manager):
    docs = manager.get("docs")
    errors = []

    def search():
        try:
            for _ in range(10):
                result = docs.query(
                    Query([SubSearch("text", text="capital"), SubSearch("tag", vector=tag_vector(1))])
                )
                assert len(result.hits) >= 8
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(5):
        docs.upsert([Document(f"extra{i}", f"extra document {i}", {}, {"tag": tag_vector(i)})])
    for t in threads:
        t.join()
    assert errors == [] and docs.count() == 13 and len(docs._fields["tag"]) == 13


HYBRID_SCHEMA = {
    "dense": [{"name": "text", "encoder": MINILM}],
    "sparse": [{"name": "bm25", "encoder": "bm25"}, {"name": "terms", "encoder": "precomputed"}],
}


def sparse_terms(i):
    return ([i, 100 + i % 2], [1.0, 0.5])


def test_hybrid_bm25_sparse_dense_survives_restart(tmp_path, minilm_registry):
    m = CollectionManager(tmp_path / "d", minilm_registry)
    docs = m.create("h", HYBRID_SCHEMA)
    docs.upsert(
        [
            Document(key, text, {"i": i}, {"terms": sparse_terms(i)})
            for i, (key, text) in enumerate(TEXTS.items())
        ]
    )
    bm25 = docs.query(Query([SubSearch("bm25", text="capital of Germany")], limit=3))
    assert ids(bm25)[0] == "berlin" and bm25.hits[0].sources["bm25"].score > 0
    terms = docs.query(Query([SubSearch("terms", vector=([3, 101], [1.0, 1.0]))], limit=8))
    assert ids(terms)[0] == "python" and set(ids(terms)) == {
        "python",
        "dog",
        "berlin",
        "flu",
    }  # odd i share 101
    assert terms.hits[0].score == pytest.approx(1.5) and terms.hits[1].score == pytest.approx(0.5)
    query = Query(
        [
            SubSearch("bm25", text="heart attack risk"),
            SubSearch("text", text="heart attack risk"),
            SubSearch("terms", vector=([6], [1.0])),
        ],
        fusion=WeightedSum("min-max"),
        limit=3,
        with_metadata=True,
    )
    before = docs.query(query)
    assert before.hits[0].id == "heart" and set(before.hits[0].sources) == {"bm25", "text", "terms"}
    assert before.hits[0].score == pytest.approx(3.0)
    with pytest.raises(InvalidArgument, match="give a query text"):
        docs.query(Query([SubSearch("bm25", vector=([1], [1.0]))]))
    with pytest.raises(InvalidArgument, match="strictly increasing"):
        docs.query(Query([SubSearch("terms", vector=([5, 1], [1.0, 1.0]))]))
    with pytest.raises(InvalidArgument, match=r"\[0, 2\^32\)"):
        docs.query(Query([SubSearch("terms", vector=([-3], [1.0]))]))
    m.close()  # snapshot: dense, BM25 and sparse indexes
    m = CollectionManager(tmp_path / "d", minilm_registry)
    docs = m.get("h")
    after = docs.query(query)
    assert [(h.id, h.score) for h in after.hits] == [(h.id, pytest.approx(h.score)) for h in before.hits]
    docs.delete(["heart"])
    assert "heart" not in ids(docs.query(Query([SubSearch("bm25", text="heart attack")], limit=8)))
    m.close(snapshot=False)


def test_one_process_opens_a_data_directory_at_a_time(tmp_path):
    first = CollectionManager(tmp_path, ModelRegistry({}))
    with pytest.raises(FailedPrecondition, match=rf"data directory {tmp_path} is held by another process \(pid "):
        CollectionManager(tmp_path, ModelRegistry({}), lock_wait_s=0.2)
    first.close()
    CollectionManager(tmp_path, ModelRegistry({}), lock_wait_s=0).close()  # close() released it
