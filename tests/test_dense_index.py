import json

import faiss
import numpy as np
import pytest

from ferret.errors import DataLoss, InvalidArgument
from ferret.indexing.dense import DenseIndex
from ferret.indexing.snapshot import load_snapshot, publish_snapshot

DIM = 16


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, DIM)).astype(np.float32)


def brute_force(vectors, ids, queries, k, metric):
    if metric == "cosine":
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = -((queries[:, None, :] - vectors[None]) ** 2).sum(-1) if metric == "l2" else queries @ vectors.T
    order = np.argsort(-scores, axis=1)[:, :k]
    return ids[order], np.take_along_axis(scores, order, 1)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_flat_search_matches_brute_force(metric):
    vectors, queries = data(300), data(5, seed=1)
    ids = np.arange(1000, 1300, dtype=np.int64)
    index = DenseIndex(DIM, metric, "Flat")
    index.add(ids, vectors)
    got_ids, got_scores = index.search(queries, 10)
    want_ids, want_scores = brute_force(vectors, ids, queries, 10, metric)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-4, atol=1e-4)


def test_padding_allowed_and_deletes_on_flat():
    index = DenseIndex(DIM, "ip", "Flat")
    vectors = data(20)
    index.add(np.arange(20), vectors)
    ids, scores = index.search(vectors[:1], 30)
    assert (ids[0, 20:] == -1).all() and np.isneginf(scores[0, 20:]).all()
    assert set(ids[0, :20]) == set(range(20))
    allowed = np.array([3, 7, 11], dtype=np.int64)
    ids, _ = index.search(vectors[:2], 5, allowed=allowed)
    assert set(ids[0, :3]) == {3, 7, 11} and (ids[:, 3:] == -1).all()
    index.delete(np.array([3, 4]))
    assert len(index) == 18
    ids, _ = index.search(vectors[3:4], 20)
    assert 3 not in ids and 4 not in ids
    assert (index.search(vectors[:1], 3, allowed=np.array([], np.int64))[0] == -1).all()


def test_hnsw_deletes_are_tombstones_then_rebuild():
    vectors = data(400)
    index = DenseIndex(DIM, "cosine", "HNSW16")
    index.add(np.arange(400), vectors)
    index.delete(np.arange(0, 50))
    assert len(index) == 350 and len(index._tombstones) == 50  # HNSW cannot remove: tombstones
    ids, _ = index.search(vectors[:50], 10)
    assert not np.isin(ids, np.arange(50)).any()
    ids, _ = index.search(vectors[100:101], 5, allowed=np.array([100, 1, 2, 399], np.int64))
    assert ids[0, 0] == 100 and set(ids[0][ids[0] >= 0]) <= {100, 399}
    index.delete(np.arange(50, 120))  # now > 25% dead: rebuilt without them
    assert len(index) == 280 and not index._tombstones and index._index.ntotal == 280
    ids, _ = index.search(vectors[200:201], 1)
    assert ids[0, 0] == 200


def test_ivf_serves_exactly_until_trained_then_trains():
    index = DenseIndex(DIM, "l2", "IVF4,Flat")
    assert index._train_size == 39 * 4
    first = data(100)
    index.add(np.arange(100), first)
    assert index._pending is not None and len(index) == 100
    ids, _ = index.search(first[:3], 1)
    assert ids[:, 0].tolist() == [0, 1, 2]  # exact while untrained
    second = data(100, seed=5)
    index.add(np.arange(100, 200), second)
    assert index._pending is None and index._index.is_trained and len(index) == 200
    faiss.extract_index_ivf(index._index).nprobe = 4  # all lists: exact again, so the answer is checkable
    ids, _ = index.search(second[:3], 1)
    assert ids[:, 0].tolist() == [100, 101, 102]
    index.delete(np.array([100]))  # IVF supports remove_ids
    assert len(index) == 199 and not index._tombstones


@pytest.mark.parametrize("factory", ["Flat", "HNSW16", "IVF4,Flat"])
def test_save_load_round_trip(tmp_path, factory):
    vectors = data(120)
    index = DenseIndex(DIM, "cosine", factory)
    index.add(np.arange(120), vectors)
    index.delete(np.array([5]))
    files = index.save(tmp_path / "f")
    assert all(p.exists() for p in files)
    loaded = DenseIndex.load(tmp_path / "f")
    assert len(loaded) == len(index) == 119
    for a, b in zip(index.search(vectors[:4], 7), loaded.search(vectors[:4], 7), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda i: i.add(np.arange(2), data(2)[:, :5]), "dimension 16"),
        (lambda i: i.add(np.arange(3), data(2)), "3 ids for 2 vectors"),
        (lambda i: i.add(np.arange(1), np.full((1, DIM), np.nan)), "NaN"),
        (lambda i: i.search(data(1), 0), "k must be"),
        (lambda i: i.search(data(1)[:, :3], 1), "dimension 16"),
    ],
)
def test_bad_input(call, message):
    index = DenseIndex(DIM)
    with pytest.raises(InvalidArgument, match=message):
        call(index)
    assert len(index) == 0


def test_bad_factory_and_metric():
    with pytest.raises(InvalidArgument, match="FAISS cannot build"):
        DenseIndex(DIM, "ip", "NoSuchIndex42")
    with pytest.raises(InvalidArgument, match="unknown metric"):
        DenseIndex(DIM, "hamming")


def test_snapshot_publish_verify_and_detect_corruption(tmp_path):
    index = DenseIndex(DIM, "ip", "Flat")
    index.add(np.arange(10), data(10))
    root = tmp_path / "indexes"
    assert load_snapshot(root) is None
    publish_snapshot(root, 3, {"emb": {"encoder": "precomputed"}}, {"emb": index.save})
    manifest = publish_snapshot(root, 7, {"emb": {"encoder": "precomputed"}}, {"emb": index.save})
    assert sorted(p.name for p in root.iterdir()) == ["CURRENT", manifest.directory.name]  # old one removed
    assert manifest.directory.name.startswith("snap-000000000007-")
    loaded = load_snapshot(root)
    assert loaded.watermark == 7 and loaded.fields == {"emb": {"encoder": "precomputed"}}
    assert set(loaded.files) == {"emb/dense.faiss", "emb/dense.json", "emb/dense-tombstones.npy"}
    on_disk = json.loads((manifest.directory / "manifest.json").read_text())
    assert on_disk["files"] == loaded.files
    target = manifest.directory / "emb" / "dense.faiss"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(DataLoss, match="checksum mismatch in emb/dense.faiss"):
        load_snapshot(root)
    target.unlink()
    with pytest.raises(DataLoss, match="missing"):
        load_snapshot(root)
