import re

import numpy as np
import pytest

from ferret.encoders.base import SparseVector
from ferret.errors import AlreadyExists, InvalidArgument, NotFound
from ferret.indexing.schema import CollectionSchema, DenseField, SparseField
from ferret.indexing.store import Document, DocumentStore

SCHEMA = CollectionSchema(
    dense=(DenseField("emb", dim=3),),
    sparse=(SparseField("splade"), SparseField("bm25", encoder="bm25")),
)


def doc(i, **kw):
    return Document(
        id=f"d{i}",
        text=kw.get("text", f"text {i}"),
        metadata=kw.get("metadata", {"n": i}),
        vectors={"emb": kw.get("emb", [i, 1.0, 0.0]), "splade": kw.get("splade", ([1, 7], [0.5, i + 1.0]))},
    )


@pytest.fixture
def store(tmp_path):
    s = DocumentStore(tmp_path / "ferret.db")
    s.create_collection("c", SCHEMA)
    yield s
    s.close()


def test_database_is_wal_with_full_sync(store):
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_upsert_get_count_and_versions(store):
    first = store.upsert("c", [doc(1), doc(2)])
    assert first.version == 1 and len(first.row_ids) == 2 and first.replaced_row_ids.size == 0
    again = store.upsert("c", [doc(2, text="new")])
    assert again.version == 2 and again.replaced_row_ids.tolist() == [first.row_ids[1]]
    assert store.count("c") == 2
    got = store.get("c", ["d2", "missing", "d1"], with_vectors=True)
    assert [d.id for d in got] == ["d2", "d1"]
    assert got[0].text == "new" and got[0].version == 2
    np.testing.assert_array_equal(got[1].vectors["emb"], np.array([1, 1, 0], np.float32))
    sv = got[1].vectors["splade"]
    assert isinstance(sv, SparseVector) and sv.indices.tolist() == [1, 7] and sv.values.tolist() == [0.5, 2.0]
    assert "bm25" not in got[1].vectors
    removed = store.delete("c", ["d1", "absent"])
    assert removed.version == 3 and removed.replaced_row_ids.tolist() == [first.row_ids[0]]
    assert store.count("c") == 1 and store.version("c") == 3


def test_changes_since_watermark(store):
    a = store.upsert("c", [doc(1), doc(2), doc(3)])  # v1
    store.upsert("c", [doc(2)])  # v2: replaces d2
    store.delete("c", ["d3"])  # v3
    b = store.upsert("c", [doc(4)])  # v4
    store.upsert("c", [doc(5)])  # v5
    store.delete("c", ["d5"])  # v6: added and removed after the watermark -> neither
    changes = store.changes_since("c", 1)
    assert changes.version == 6
    assert sorted(d.id for d in changes.added) == ["d2", "d4"]
    assert changes.removed.tolist() == [a.row_ids[1], a.row_ids[2]]
    assert b.row_ids[0] in [d.row_id for d in changes.added]
    assert store.changes_since("c", 6).added == [] and store.changes_since("c", 6).removed.size == 0


@pytest.mark.parametrize(
    "bad, message",
    [
        (doc(9, emb=[1.0, 2.0]), "dimension 3"),
        (doc(9, emb=[np.nan, 0, 0]), "NaN"),
        (doc(9, emb=[np.inf, 0, 0]), "NaN or infinity"),
        (doc(9, splade=([-1, 2], [1.0, 1.0])), "[0, 2^32)"),
        (doc(9, splade=([5, 2], [1.0, 1.0])), "strictly increasing"),
        (doc(9, splade=([2, 2], [1.0, 1.0])), "strictly increasing"),
        (doc(9, splade=([1], [np.nan])), "NaN"),
        (doc(9, splade=([1, 2], [1.0])), "equal length"),
        (doc(9, metadata={"x": float("nan")}), "metadata"),
        (Document(id="", vectors={}), "document id"),
        (Document(id="x", vectors={"emb": [1, 2, 3]}), "missing a vector for sparse field 'splade'"),
        (Document(id="x", vectors={"emb": [1, 2, 3], "splade": ([1], [1]), "other": [1]}), "unknown vector"),
    ],
)
def test_bad_documents_are_rejected_and_nothing_is_written(store, bad, message):
    store.upsert("c", [doc(1)])
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        store.upsert("c", [doc(2), bad])
    assert store.count("c") == 1 and store.version("c") == 1 and store.get("c", ["d2"]) == []


def test_duplicate_ids_in_a_batch(store):
    with pytest.raises(InvalidArgument, match="unique within a batch"):
        store.upsert("c", [doc(1), doc(1)])
    assert store.count("c") == 0


def test_collections_and_aliases(store):
    with pytest.raises(AlreadyExists):
        store.create_collection("c", SCHEMA)
    store.create_collection("c2", SCHEMA)
    store.update_aliases({"live": "c"})
    assert store.aliases() == {"live": "c"}
    store.update_aliases({"live": "c2"})
    assert store.aliases() == {"live": "c2"}
    with pytest.raises(NotFound):  # one bad op rolls back the whole change
        store.update_aliases({"live": "c", "other": "nope"})
    assert store.aliases() == {"live": "c2"}
    with pytest.raises(AlreadyExists):
        store.update_aliases({"c": "c2"})
    store.upsert("c2", [doc(1)])
    store.drop_collection("c2")
    assert [r.name for r in store.list_collections()] == ["c"] and store.aliases() == {}
    with pytest.raises(NotFound):
        store.count("c2")
    with pytest.raises(InvalidArgument):
        store.create_collection("../x", SCHEMA)


def test_reopen_keeps_acknowledged_data(tmp_path):
    s = DocumentStore(tmp_path / "db")
    s.create_collection("c", SCHEMA)
    s.upsert("c", [doc(i) for i in range(50)], meta={"checkpoint": "50"})
    s.close()
    s = DocumentStore(tmp_path / "db")
    assert s.count("c") == 50 and s.version("c") == 1 and s.get_meta("c", "checkpoint") == "50"
    assert sum(len(b) for b in s.live_documents("c", batch_size=7)) == 50
