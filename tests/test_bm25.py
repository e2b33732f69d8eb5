import numpy as np
import pytest

from ferret.errors import InvalidArgument
from ferret.indexing.bm25 import BM25Index, TermStatistics, length_to_norm, norm_to_length

CORPUS = [
    "The quick brown fox jumps over the lazy dog",
    "A fox is a small omnivorous mammal",
    "Dogs and foxes are both canids; dogs were domesticated",
    "Lazy afternoons are for reading about mammals",
    "Quick sort is a divide and conquer algorithm",
    "The brown bear is a large mammal",
]
QUERIES = ["quick fox", "lazy dog mammal", "brown bear", "algorithm", "fox fox dog"]


def _results(index, queries=QUERIES, k=5):
    return [index.search(q, k) for q in queries]


def _assert_same(left, right):
    for (ids_a, sc_a), (ids_b, sc_b) in zip(left, right, strict=True):
        assert ids_a.tolist() == ids_b.tolist()
        np.testing.assert_allclose(sc_a, sc_b, rtol=1e-6)


def test_norm_matches_lucene_smallfloat():
    # Lengths below 24 are exact; above, 4 significant bits: decoded <= length, within 1/8.
    assert [length_to_norm(n) for n in range(24)] == list(range(24))
    assert norm_to_length(length_to_norm(100)) == 96  # Lucene's byte4ToInt(intToByte4(100))
    for length in [24, 25, 31, 57, 100, 1000, 123_456, 2**31 - 1]:
        decoded = norm_to_length(length_to_norm(length))
        assert decoded <= length and (length - decoded) / length < 1 / 8
    assert norm_to_length(255) == 2**31 - 1 or norm_to_length(255) > 1_900_000_000


def test_scores_follow_lucene_formula():
    index = BM25Index(k1=0.9, b=0.4)
    index.add(np.arange(len(CORPUS)), CORPUS)
    ids, scores = index.search("bear", 3)
    # "bear" occurs once, in doc 5 of length 3 (brown, bear, larg, mammal minus stop words = 4 terms).
    n, df = len(CORPUS), 1
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    lengths = [len(index.analyzer(t)) for t in CORPUS]
    avgdl = sum(lengths) / n
    expected = idf * 1 / (1 + 0.9 * (1 - 0.4 + 0.4 * lengths[5] / avgdl))
    assert ids.tolist() == [5]
    assert scores[0] == pytest.approx(expected, rel=1e-5)


def test_incremental_adds_and_deletes_equal_a_fresh_build():
    incremental = BM25Index()
    incremental.add(np.arange(3), CORPUS[:3])
    incremental.add(np.arange(3, 6), CORPUS[3:])
    incremental.add(np.array([10, 11]), ["fox fox fox", "an extra lazy document"])
    incremental.delete(np.array([10, 11, 999]))  # 999 was never indexed: ignored
    fresh = BM25Index()
    fresh.add(np.arange(6), CORPUS)
    _assert_same(_results(incremental), _results(fresh))
    assert len(incremental) == 6

    incremental.delete(np.array([1]))
    rebuilt = BM25Index()
    rebuilt.add(np.array([0, 2, 3, 4, 5]), [CORPUS[i] for i in (0, 2, 3, 4, 5)])
    _assert_same(_results(incremental), _results(rebuilt))
    assert 1 not in np.concatenate([ids for ids, _ in _results(incremental)])


def test_compaction_and_main_segment_keep_rankings():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    texts = [" ".join(rng.choice(words, size=rng.integers(3, 30))) for _ in range(12_000)]
    index = BM25Index()
    for start in range(0, len(texts), 4000):  # the third batch pushes the recent segment into main
        index.add(np.arange(start, start + 4000), texts[start : start + 4000])
    queries = ["w1 w2 w3", "w250 w7", "w42"]
    dead = np.arange(12_000)[np.arange(12_000) % 3 != 0]
    index.delete(dead)  # two thirds dead: rows are compacted
    assert index._ids.size == 4000
    survivors = BM25Index()
    survivors.add(np.arange(0, 12_000, 3), texts[::3])
    _assert_same([index.search(q, 10) for q in queries], [survivors.search(q, 10) for q in queries])
    _assert_same(index.search_batch(queries, 10), [survivors.search(q, 10) for q in queries])


def test_allowed_restricts_results():
    index = BM25Index()
    index.add(np.arange(len(CORPUS)), CORPUS)
    ids, _ = index.search("fox dog mammal", 10, allowed=np.array([2, 3, 40]))
    assert set(ids.tolist()) <= {2, 3} and len(ids) == 2
    assert index.search("fox", 10, allowed=np.array([], dtype=np.int64))[0].size == 0


def test_save_load_round_trip(tmp_path):
    index = BM25Index(k1=1.2, b=0.75)
    index.add(np.arange(len(CORPUS)), CORPUS)
    index.delete(np.array([4]))
    files = index.save(tmp_path)
    assert all(f.exists() and f.parent == tmp_path for f in files)
    loaded = BM25Index.load(tmp_path)
    assert (loaded.k1, loaded.b, len(loaded)) == (1.2, 0.75, 5)
    _assert_same(_results(loaded), _results(index))
    loaded.add(np.array([7]), ["quick quick algorithm"])
    assert loaded.search("algorithm", 1)[0].tolist() == [7]


def test_bad_input_is_invalid_argument():
    index = BM25Index()
    index.add(np.arange(2), CORPUS[:2])
    with pytest.raises(InvalidArgument, match="k must be positive"):
        index.search("fox", 0)
    with pytest.raises(InvalidArgument, match="one id per text"):
        index.add(np.arange(3), CORPUS[:2])
    with pytest.raises(InvalidArgument, match="duplicate ids"):
        index.add(np.array([5, 5]), CORPUS[:2])
    with pytest.raises(InvalidArgument, match="already indexed"):
        index.add(np.array([1]), ["again"])
    with pytest.raises(InvalidArgument, match="b must be"):
        BM25Index(b=1.5)
    assert len(index) == 2


def test_split_indexes_with_summed_statistics_score_like_the_single_index():
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(40)]
    texts = [*CORPUS, *(" ".join(rng.choice(words, size=rng.integers(1, 60))) for _ in range(300))]
    single = BM25Index()
    single.add(np.arange(len(texts)), texts)
    # Uneven parts: their own N, df and avgdl differ from the whole collection's.
    owner = np.minimum(rng.integers(0, 4, size=len(texts)), 2)
    parts = []
    for part in range(3):
        index = BM25Index()
        rows = np.flatnonzero(owner == part)
        index.add(rows, [texts[r] for r in rows])
        parts.append(index)
    deleted = np.array([1, 7, 50, 51, 52, 200])
    single.delete(deleted)
    for index in parts:
        index.delete(deleted)
    queries = [*QUERIES, "w1 w2 w3", "w7 w7 w30 fox", "w39", "nothing matches this"]
    statistics = TermStatistics.sum(index.term_statistics(queries) for index in parts)
    assert statistics == single.term_statistics(queries)
    expected = single.search_batch(queries, 10)
    per_part = [index.search_batch(queries, 10, statistics) for index in parts]
    for q, query in enumerate(queries):
        ids = np.concatenate([found[q][0] for found in per_part])
        scores = np.concatenate([found[q][1] for found in per_part])
        best = np.lexsort((ids, -scores))[:10]
        expected_ids, expected_scores = expected[q]
        # Row ids follow insertion order, so ties break alike; the same floats, not just close ones.
        assert ids[best].tolist() == expected_ids.tolist(), query
        assert np.array_equal(scores[best], expected_scores), query
        alone_ids, alone_scores = parts[0].search(query, 10, statistics=statistics)
        part_ids, part_scores = per_part[0][q]
        assert alone_ids.tolist() == part_ids.tolist() and np.array_equal(alone_scores, part_scores)
    # Without the summed statistics a part scores with its own, which differ.
    own = parts[0].search("w1 w2 w3", 10)[1]
    assert not np.allclose(own, parts[0].search("w1 w2 w3", 10, statistics=statistics)[1])


def test_statistics_lacking_a_term_fall_back_to_the_index_df():
    index = BM25Index()
    index.add(np.arange(len(CORPUS)), CORPUS)
    stats = index.term_statistics(["fox"])
    assert set(stats.df) == {"fox"} and stats.documents == len(CORPUS)
    # "bear" was not asked for (as if first written between gathering and searching): its own df is used.
    assert np.array_equal(index.search("fox bear", 5, statistics=stats)[1], index.search("fox bear", 5)[1])


@pytest.mark.parametrize(
    ("documents", "tokens", "df", "message"),
    [
        (3, 10, {"fox": 4}, "df of 'fox' is 4 but there are only 3 documents"),
        (0, 0, {"fox": 1}, "df of 'fox' is 1 but there are only 0 documents"),
        (5, 3, {}, "3 tokens in 5 documents is impossible"),
        (0, 7, {}, "7 tokens in 0 documents is impossible"),
        (-1, 0, {}, "documents must be an integer >= 0"),
        (2, 4, {"fox": -1}, "df of 'fox' must be an integer >= 0"),
        (2, 4, {"": 1}, "non-empty analysed terms"),
        (2.5, 4, {}, "documents must be an integer"),
    ],
)
def test_impossible_statistics_are_invalid_argument(documents, tokens, df, message):
    with pytest.raises(InvalidArgument, match=message):
        TermStatistics(documents, tokens, df)


def test_top10_agrees_with_pyserini(scifact_slice, lucene_scifact_index):
    from pyserini.search.lucene import LuceneSearcher

    _, texts, queries = scifact_slice
    index = BM25Index()
    index.add(np.arange(len(texts)), texts)
    searcher = LuceneSearcher(str(lucene_scifact_index))
    searcher.set_bm25(0.9, 0.4)
    queries = queries[:40]
    for query, (ids, scores) in zip(queries, index.search_batch(queries, 10), strict=True):
        hits = searcher.search(query, 10)
        lucene_ids = [int(h.docid) for h in hits]
        lucene_scores = np.array([h.score for h in hits], dtype=np.float32)
        np.testing.assert_allclose(scores, lucene_scores, rtol=1e-4)
        # Same documents in the same order, except for swaps inside exact score ties.
        for position, (ours, theirs) in enumerate(zip(ids.tolist(), lucene_ids, strict=True)):
            if ours != theirs:
                tied = np.isclose(lucene_scores, lucene_scores[position], rtol=1e-5)
                assert ours in np.array(lucene_ids)[tied], (query, ids, lucene_ids)
