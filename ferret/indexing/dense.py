"""Dense vector index on FAISS.

The index is built from a `faiss.index_factory` string and wrapped in `IndexIDMap2` so that it speaks the
store's int64 row ids. Scores are "higher is better" for every metric: cosine and ip return the inner
product (cosine on L2-normalised vectors), l2 returns the negated squared distance.

Specs that need training (IVF, PQ, ...) serve exactly from a flat side index until enough vectors have
arrived to train them (39 points per centroid, FAISS's own warning threshold); then the side index is
folded in. Deletes use `remove_ids` where the index supports it; otherwise (HNSW) the ids become
tombstones that every search excludes, and the index is rebuilt from its stored vectors once tombstones
outnumber a quarter of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np

from ferret.errors import InvalidArgument

_METRICS = {"cosine": faiss.METRIC_INNER_PRODUCT, "ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}
_POINTS_PER_CENTROID = 39
_REBUILD_FRACTION = 0.25


class DenseIndex:
    """FAISS index from a factory string ("Flat", "HNSW32", "IVF1024,PQ64"), metric cosine|ip|l2."""

    def __init__(self, dim: int, metric: str = "cosine", factory: str = "Flat") -> None:
        if metric not in _METRICS:
            raise InvalidArgument(f"unknown metric {metric!r}; use one of {sorted(_METRICS)}")
        if not isinstance(dim, int) or dim <= 0:
            raise InvalidArgument(f"dimension must be a positive integer, not {dim!r}")
        self.dim, self.metric, self.factory = dim, metric, factory
        try:
            inner = faiss.index_factory(dim, factory, _METRICS[metric])
        except RuntimeError as exc:
            raise InvalidArgument(
                f"FAISS cannot build index {factory!r} for dimension {dim}: "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from None
        self._index = inner if isinstance(inner, faiss.IndexIDMap) else faiss.IndexIDMap2(inner)
        self._pending = None if inner.is_trained else self._flat()  # serves until training
        self._train_size = _training_size(inner)
        self._tombstones: set[int] = set()
        self._removable = True  # becomes False the first time remove_ids is refused
        self._gpu = None  # search copy on the GPU, dropped on every mutation

    def _flat(self) -> faiss.IndexIDMap2:
        return faiss.IndexIDMap2(faiss.IndexFlat(self.dim, _METRICS[self.metric]))

    # -- writes ------------------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = self._check_ids(ids), self._prepare(vectors)
        if len(ids) != len(vectors):
            raise InvalidArgument(f"{len(ids)} ids for {len(vectors)} vectors")
        if not len(ids):
            return
        self._gpu = None
        if self._pending is None:
            self._index.add_with_ids(vectors, ids)
            return
        self._pending.add_with_ids(vectors, ids)
        if self._pending.ntotal >= self._train_size:
            self._train_from_pending()

    def _train_from_pending(self) -> None:
        pending_ids = faiss.vector_to_array(self._pending.id_map).astype(np.int64)
        vectors = self._pending.index.reconstruct_n(0, self._pending.ntotal)
        self._index.train(vectors)
        self._index.add_with_ids(vectors, pending_ids)
        self._pending = None

    def delete(self, ids: np.ndarray) -> None:
        ids = self._check_ids(ids)
        if not len(ids):
            return
        self._gpu = None
        selector = faiss.IDSelectorBatch(ids)
        if self._pending is not None:
            self._pending.remove_ids(selector)
        if self._removable:
            try:
                self._index.remove_ids(selector)
                return
            except RuntimeError:  # e.g. HNSW: FAISS cannot remove from the graph
                self._removable = False
        present = set(faiss.vector_to_array(self._index.id_map).tolist())
        self._tombstones.update(i for i in ids.tolist() if i in present)
        if len(self._tombstones) > _REBUILD_FRACTION * max(self._index.ntotal, 1):
            self._rebuild()

    def _rebuild(self) -> None:
        """Re-insert the live vectors into a fresh index of the same spec (drops the tombstones)."""
        all_ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        keep = ~np.isin(all_ids, np.fromiter(self._tombstones, np.int64, len(self._tombstones)))
        vectors = self._index.index.reconstruct_n(0, self._index.ntotal)[keep]
        fresh = DenseIndex(self.dim, self.metric, self.factory)
        fresh.add(all_ids[keep], vectors)
        self._index, self._pending, self._tombstones = fresh._index, fresh._pending, set()

    # -- reads -------------------------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of each query: (int64 ids [n,k], float32 scores [n,k]), best first, -1 / -inf padding."""
        queries = self._prepare(queries)
        if not isinstance(k, int | np.integer) or k <= 0:
            raise InvalidArgument(f"k must be a positive integer, not {k!r}")
        n = len(queries)
        ids = np.full((n, k), -1, dtype=np.int64)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        if allowed is not None and not len(allowed):
            return ids, scores
        parts = (
            [(self._index, self._tombstones), (self._pending, ())]
            if self._pending is not None
            else [(self._index, self._tombstones)]
        )
        results = [
            self._search_one(index, queries, k, allowed, dead) for index, dead in parts if index.ntotal
        ]
        if not results:
            return ids, scores
        all_ids = np.concatenate([r[0] for r in results], axis=1)
        all_scores = np.concatenate([r[1] for r in results], axis=1)
        order = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
        top_ids = np.take_along_axis(all_ids, order, axis=1)
        top_scores = np.take_along_axis(all_scores, order, axis=1)
        width = top_ids.shape[1]
        ids[:, :width], scores[:, :width] = top_ids, top_scores
        scores[ids < 0] = -np.inf
        return ids, scores

    def _search_one(
        self, index, queries: np.ndarray, k: int, allowed: np.ndarray | None, dead
    ) -> tuple[np.ndarray, np.ndarray]:
        selectors = []  # kept referenced until the search returns: FAISS holds raw pointers
        if allowed is not None:
            selectors.append(faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64)))
        if dead:
            batch = faiss.IDSelectorBatch(np.fromiter(dead, np.int64, len(dead)))
            selectors += [batch, faiss.IDSelectorNot(batch)]
        if len(selectors) == 3:
            selectors.append(faiss.IDSelectorAnd(selectors[0], selectors[2]))
        if selectors:
            params = _search_params(index.index, selectors[-1])
            distances, labels = index.search(queries, min(k, index.ntotal), params=params)
        else:
            distances, labels = self._search_copy(index).search(queries, min(k, index.ntotal))
        scores = -distances if self.metric == "l2" else distances
        return labels.astype(np.int64), scores.astype(np.float32)

    def _search_copy(self, index):
        """The index itself, or its GPU copy when FAISS sees a GPU (selector-free searches only)."""
        if index is not self._index or not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
            return index
        if self._gpu is None:
            self._gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
        return self._gpu

    def __len__(self) -> int:
        pending = self._pending.ntotal if self._pending is not None else 0
        return int(self._index.ntotal + pending - len(self._tombstones))

    # -- persistence -------------------------------------------------------------------------------------

    def save(self, directory: Path) -> list[Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = [directory / "dense.faiss", directory / "dense.json", directory / "dense-tombstones.npy"]
        faiss.write_index(self._index, str(files[0]))
        files[1].write_text(
            json.dumps(
                {
                    "dim": self.dim,
                    "metric": self.metric,
                    "factory": self.factory,
                    "removable": self._removable,
                    "pending": self._pending is not None,
                }
            )
        )
        np.save(files[2], np.array(sorted(self._tombstones), dtype=np.int64))
        if self._pending is not None:
            files.append(directory / "dense-pending.faiss")
            faiss.write_index(self._pending, str(files[-1]))
        return files

    @classmethod
    def load(cls, directory: Path) -> DenseIndex:
        directory = Path(directory)
        info = json.loads((directory / "dense.json").read_text())
        index = cls(info["dim"], info["metric"], info["factory"])
        index._index = faiss.read_index(str(directory / "dense.faiss"))
        index._removable = info["removable"]
        index._tombstones = set(np.load(directory / "dense-tombstones.npy").tolist())
        index._pending = faiss.read_index(str(directory / "dense-pending.faiss")) if info["pending"] else None
        return index

    # -- validation --------------------------------------------------------------------------------------

    @staticmethod
    def _check_ids(ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise InvalidArgument("ids must be a 1-D array of integers")
        return np.ascontiguousarray(ids, dtype=np.int64)

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InvalidArgument(f"expected vectors of dimension {self.dim}, got shape {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise InvalidArgument("vectors contain NaN or infinity")
        vectors = np.ascontiguousarray(vectors)
        if self.metric == "cosine":
            vectors = vectors.copy()
            faiss.normalize_L2(vectors)
        return vectors


def _training_size(index: faiss.Index) -> int:
    """Vectors to collect before training: 39 per centroid of the largest codebook (IVF lists, PQ codes)."""
    if index.is_trained:
        return 0
    ivf = _ivf_or_none(index)
    centroids = ivf.nlist if ivf is not None else 1
    for part in (index, ivf):
        pq = getattr(faiss.downcast_index(part), "pq", None) if part is not None else None
        if pq is not None:
            centroids = max(centroids, pq.ksub)
    return _POINTS_PER_CENTROID * centroids


def _ivf_or_none(index: faiss.Index):
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _search_params(index: faiss.Index, selector) -> faiss.SearchParameters:
    """Search parameters of the type the index expects, carrying the id selector (and its current
    nprobe / efSearch so that a filtered search is as thorough as an unfiltered one)."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=index.hnsw.efSearch)
    ivf = _ivf_or_none(index)
    if ivf is not None:
        return faiss.SearchParametersIVF(sel=selector, nprobe=ivf.nprobe)
    return faiss.SearchParameters(sel=selector)
