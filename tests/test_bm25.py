import numpy as np
import pytest

from ferret.errors import InvalidArgument
from ferret.indexing.bm25 import BM25Index, length_to_norm, norm_to_length

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
