import numpy as np
import pytest

from ferret.errors import InvalidArgument
from ferret.indexing.filters import Filter, Match, MatchAny, Range, parse_filter
from ferret.indexing.fusion import RRF, SourceHits, WeightedSum, fuse
from ferret.indexing.schema import CollectionSchema, DenseField
from ferret.indexing.store import Document, DocumentStore


def hits(name, ids, scores, weight=1.0):
    return SourceHits(name, np.array(ids, np.int64), np.array(scores, np.float32), weight)


def test_rrf_matches_the_formula_and_keeps_source_ranks():
    a = hits("bm25", [10, 20, 30], [9.0, 5.0, 1.0])
    b = hits("dense", [30, 40], [0.9, 0.8], weight=2.0)
    fused = fuse([a, b], RRF(k=60))
    expected = {10: 1 / 61, 20: 1 / 62, 30: 1 / 63 + 2 / 61, 40: 2 / 62}
    assert [h.id for h in fused] == sorted(expected, key=lambda d: -expected[d])
    for h in fused:
        assert h.score == pytest.approx(expected[h.id])
    top = fused[0]
    assert top.id == 30 and top.sources["bm25"].rank == 3 and top.sources["dense"].rank == 1
    assert top.sources["bm25"].score == 1.0 and top.sources["dense"].score == pytest.approx(0.9)
    assert set(fused[-1].sources) == {"bm25"}


def test_rrf_ties_break_by_id_and_k_changes_order():
    a, b = hits("a", [1, 2], [2, 1]), hits("b", [2, 1], [2, 1])
    assert [h.id for h in fuse([a, b], RRF(k=0))] == [1, 2]
    c = hits("c", [5, 6, 10, 11, 7], [5, 4, 3, 2, 1])
    d = hits("d", [8, 7], [2, 1])
    # with k=0 a first place dominates; with a large k, appearing in both lists wins
    assert fuse([c, d], RRF(k=0))[0].id == 5
    assert fuse([c, d], RRF(k=1000))[0].id == 7


def test_min_max_weighted_sum_with_missing_documents():
    a = hits("a", [1, 2, 3], [10.0, 6.0, 2.0])
    b = hits("b", [3, 4], [0.5, 0.1], weight=0.5)
    fused = {h.id: h.score for h in fuse([a, b], WeightedSum("min-max"))}
    # a: 1 -> 1, 2 -> 0.5, 3 -> 0 ; b: 3 -> 1, 4 -> 0 (missing counts as 0)
    assert fused == pytest.approx({1: 1.0, 2: 0.5, 3: 0.5, 4: 0.0})


def test_z_score_weighted_sum():
    a = hits("a", [1, 2, 3], [3.0, 2.0, 1.0])
    b = hits("b", [2, 9], [4.0, 0.0])
    fused = {h.id: h.score for h in fuse([a, b], WeightedSum("z-score"))}
    za = (np.array([3, 2, 1]) - 2) / np.std([3, 2, 1])
    zb = np.array([1.0, -1.0])
    expected = {1: za[0] + zb.min(), 2: za[1] + zb[0], 3: za[2] + zb.min(), 9: za.min() + zb[1]}
    assert fused == pytest.approx(expected)


def test_constant_scores_and_empty_sources():
    fused = fuse([hits("a", [1, 2], [5, 5]), hits("b", [], [])], WeightedSum())
    assert [h.score for h in fused] == [1.0, 1.0]
    assert fuse([], RRF()) == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: RRF(k=-1),
        lambda: RRF(k=float("nan")),
        lambda: WeightedSum("softmax"),
        lambda: fuse([hits("a", [1], [1], weight=-1)], RRF()),
        lambda: fuse([hits("a", [1], [1], weight=0)], RRF()),
        lambda: fuse([hits("a", [1], [1]), hits("a", [2], [1])], RRF()),
    ],
)
def test_bad_fusion_parameters(make):
    with pytest.raises(InvalidArgument):
        make()


@pytest.fixture
def store(tmp_path):
    s = DocumentStore(tmp_path / "db")
    s.create_collection("c", CollectionSchema(dense=(DenseField("v", dim=1),)))
    metadata = [
        {"year": 2019, "lang": "en", "tags": ["a", "b"], "ok": True},
        {"year": 2021, "lang": "de", "tags": ["b"], "ok": False},
        {"year": 2023.5, "lang": "en", "tags": [], "score": "5"},
        {"lang": "fr", "tags": ["c"], "year": "2020"},
        {"score": 5, "key.with.dots": "x"},
    ]
    s.upsert("c", [Document(f"d{i}", metadata=m, vectors={"v": [1.0]}) for i, m in enumerate(metadata)])
    yield s
    s.close()


def admitted(store, spec):
    rows = store.select_rows("c", *parse_filter(spec).to_sql())
    return sorted(d.id for d in store.rows(rows).values())


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"must": [{"key": "lang", "match": "en"}]}, ["d0", "d2"]),
        ({"must": [{"key": "tags", "match": "b"}]}, ["d0", "d1"]),  # any element of a list
        ({"must": [{"key": "ok", "match": True}]}, ["d0"]),
        ({"must": [{"key": "ok", "match": False}]}, ["d1"]),
        ({"must": [{"key": "score", "match": 5}]}, ["d4"]),  # the string "5" is not the number 5
        ({"must": [{"key": "score", "match": "5"}]}, ["d2"]),
        ({"must": [{"key": "lang", "any": ["de", "fr"]}]}, ["d1", "d3"]),
        ({"must": [{"key": "year", "range": {"gte": 2020}}]}, ["d1", "d2"]),  # "2020" is a string
        ({"must": [{"key": "year", "range": {"gt": 2019, "lt": 2022}}]}, ["d1"]),
        ({"must": [{"key": "year", "range": {"lte": 2019}}]}, ["d0"]),
        ({"must_not": [{"key": "lang", "match": "en"}]}, ["d1", "d3", "d4"]),
        (
            {"must": [{"key": "lang", "match": "en"}], "must_not": [{"key": "tags", "any": ["a", "z"]}]},
            ["d2"],
        ),
        ({"must": [{"key": "key.with.dots", "match": "x"}]}, ["d4"]),
        ({"must": [{"key": "absent", "match": 1}]}, []),
        ({}, ["d0", "d1", "d2", "d3", "d4"]),
    ],
)
def test_filters_select_the_right_documents(store, spec, expected):
    assert admitted(store, spec) == expected


def test_filter_ignores_tombstoned_rows(store):
    store.delete("c", ["d0"])
    assert admitted(store, {"must": [{"key": "lang", "match": "en"}]}) == ["d2"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"should": []}, "'must' and/or 'must_not'"),
        ({"must": {"key": "a"}}, "condition"),
        ({"must": [{"key": "a", "like": "x"}]}, "unknown filter condition 'like'"),
        ({"must": [{"key": "", "match": 1}]}, "filter key"),
        ({"must": [{"key": 'a"b', "match": 1}]}, "filter key"),
        ({"must": [{"key": "a", "match": [1, 2]}]}, "not a string, finite number or boolean"),
        ({"must": [{"key": "a", "match": float("nan")}]}, "finite number"),
        ({"must": [{"key": "a", "any": []}]}, "'any' needs"),
        ({"must": [{"key": "a", "any": "abc"}]}, "list of values"),
        ({"must": [{"key": "a", "range": {}}]}, "at least one of"),
        ({"must": [{"key": "a", "range": {"gte": "2020"}}]}, "finite number"),
        ({"must": [{"key": "a", "range": {"gte": 5, "lt": 1}}]}, "is empty"),
        ({"must": [{"key": "a", "range": {"from": 1}}]}, "gt/gte/lt/lte"),
    ],
)
def test_bad_filters(spec, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_filter(spec)


def test_filter_objects_compose():
    f = Filter(must=(Match("a", 1), MatchAny("b", ("x", 2))), must_not=(Range("c", gte=0),))
    sql, params = f.to_sql()
    assert sql.count("NOT EXISTS") == 1 and sql.count("EXISTS") == 3
    assert params == ['$."a"', 1, '$."b"', "x", 2, '$."c"', 0]
