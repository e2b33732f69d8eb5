import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from ferret.encoders.base import SparseVector
from ferret.errors import InvalidArgument
from ferret.indexing.sparse import SparseIndex

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from sparse_data import sparse_corpus  # noqa: E402

# Small Seismic settings: the approximate path is built from 1,500 documents up.
SMALL = {"min_approximate_docs": 1500, "n_postings": 300, "max_fresh_docs": 10**9}


@pytest.fixture(scope="module")
def corpus():
    return sparse_corpus(2000, 30, vocabulary=3000, seed=1)


@pytest.fixture(scope="module")
def merged(corpus):
    """An index whose 2,000 documents sit in a Seismic static segment."""
    index = SparseIndex(**SMALL)
    index.add(np.arange(2000) * 10, corpus[0])
    index.merge()
    assert index._seismic is not None
    return index


def brute_force(docs, ids, query, k, allowed=None):
    dense_query = dict(zip(query.indices.tolist(), query.values.tolist(), strict=True))
    scores = np.array([sum(dense_query.get(t, 0.0) * v for t, v in zip(d.indices.tolist(), d.values.tolist(),
                                                                      strict=True)) for d in docs])
    keep = scores > 0
    if allowed is not None:
        keep &= np.isin(ids, allowed)
    order = np.lexsort((ids[keep], -scores[keep]))[:k]
    return ids[keep][order], scores[keep][order]


def test_exact_matches_brute_force(corpus, merged):
    docs, queries = corpus
    fresh = SparseIndex(approximate=False)
    fresh.add(np.arange(2000) * 10, docs)
    for query in queries[:10]:
        expected_ids, expected_scores = brute_force(docs, np.arange(2000) * 10, query, 10)
        for index in (fresh, merged):
            ids, scores = index.search(query, 10, exact=True)
            assert ids.tolist() == expected_ids.tolist()
            np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)


def test_approximate_recall(corpus, merged):
    _, queries = corpus
    recall = np.mean([
        len(set(merged.search(q, 10)[0].tolist()) & set(merged.search(q, 10, exact=True)[0].tolist())) / 10
        for q in queries
    ])
    assert recall >= 0.95


def test_tombstones_fresh_writes_and_allowed(corpus):
    docs, queries = corpus
    index = SparseIndex(**SMALL)
    index.add(np.arange(2000), docs)
    index.merge()
    index.add(np.arange(2000, 2100), docs[:100])  # fresh copies of the first 100 documents
    top = index.search(queries[0], 5)[0]
    index.delete(top[:3])
    assert len(index) == 2097
    for exact in (False, True):
        ids, _ = index.search(queries[0], 10, exact=exact)
        assert not set(top[:3].tolist()) & set(ids.tolist()) and len(ids) == 10
        allowed = np.sort(np.concatenate([top, np.arange(2000, 2010)]))
        ids, _ = index.search(queries[0], 10, allowed=allowed, exact=exact)
        assert set(ids.tolist()) <= set(allowed.tolist()) - set(top[:3].tolist())
        expected, _ = brute_force(docs + docs[:100], np.arange(2100), queries[0], 10,
                                  np.setdiff1d(allowed, top[:3]))
        assert ids.tolist() == expected.tolist()  # a filter this selective falls back to exact search


def test_merge_while_searching_and_writing(corpus):
    docs, queries = corpus
    index = SparseIndex(**SMALL)
    index.add(np.arange(1600), docs[:1600])
    errors = []
    stop = threading.Event()

    def search_loop():
        try:
            while not stop.is_set():
                ids, _ = index.search(queries[1], 10)
                assert len(ids) == 10 and len(set(ids.tolist())) == 10
        except Exception as exc:  # reported to the main thread
            errors.append(exc)

    reader = threading.Thread(target=search_loop)
    reader.start()
    merger = threading.Thread(target=index.merge)
    merger.start()
    index.add(np.arange(1600, 2000), docs[1600:])  # during the build
    index.delete(np.arange(0, 100))
    merger.join()
    stop.set()
    reader.join()
    assert not errors
    assert len(index) == 1900 and index._seismic is not None
    expected, _ = brute_force(docs[100:], np.arange(100, 2000), queries[2], 10)
    assert index.search(queries[2], 10, exact=True)[0].tolist() == expected.tolist()


def test_background_merge_when_fresh_segment_grows(corpus):
    docs, queries = corpus
    index = SparseIndex(approximate=False, max_fresh_docs=500)
    index.add(np.arange(600), docs[:600])
    index.wait_for_merge()
    assert len(index._fresh.ids) == 0 and len(index._static.ids) == 600
    expected, _ = brute_force(docs[:600], np.arange(600), queries[3], 10)
    assert index.search(queries[3], 10)[0].tolist() == expected.tolist()


def test_save_load_round_trip(tmp_path, corpus, merged):
    docs, queries = corpus
    merged_copy = SparseIndex.load(Path(merged.save(tmp_path / "a")[0]).parent)
    merged_copy.add(np.array([99_999]), [docs[0]])
    merged_copy.delete(np.array([10]))
    files = merged_copy.save(tmp_path / "b")
    assert {f.name for f in files} == {"sparse.json", "sparse.npz", "sparse.index.seismic"}
    loaded = SparseIndex.load(tmp_path / "b")
    assert len(loaded) == len(merged_copy) == 2000
    for q in queries[:5]:
        for exact in (False, True):
            a, b = loaded.search(q, 10, exact=exact), merged_copy.search(q, 10, exact=exact)
            assert a[0].tolist() == b[0].tolist()
            np.testing.assert_allclose(a[1], b[1])


def test_bad_input():
    index = SparseIndex()
    good = SparseVector(np.array([1, 5]), np.array([0.5, 1.0]))
    with pytest.raises(InvalidArgument, match="strictly increasing"):
        index.add(np.array([1]), [SparseVector(np.array([5, 1]), np.array([1.0, 1.0]))])
    with pytest.raises(InvalidArgument, match="finite"):
        index.add(np.array([1]), [SparseVector(np.array([1]), np.array([np.nan]))])
    with pytest.raises(InvalidArgument, match="duplicate ids"):
        index.add(np.array([1, 1]), [good, good])
    with pytest.raises(InvalidArgument, match="one id per vector"):
        index.add(np.array([1, 2]), [good])
    with pytest.raises(InvalidArgument, match="unknown sparse index parameters"):
        SparseIndex(n_posting=3)
    index.add(np.array([1]), [good])
    with pytest.raises(InvalidArgument, match="already indexed"):
        index.add(np.array([1]), [good])
    with pytest.raises(InvalidArgument, match="k must be positive"):
        index.search(good, 0)
    assert len(index) == 1 and index.search(good, 3)[0].tolist() == [1]
