import numpy as np
import pytest

from ferret.errors import DataLoss, FailedPrecondition
from ferret.indexing.lucene import LuceneIndex, lucene_available


@pytest.fixture(scope="module")
def lucene(lucene_scifact_index):
    return LuceneIndex(lucene_scifact_index)


def test_serves_an_anserini_bm25_index(lucene, scifact_slice):
    _, texts, queries = scifact_slice
    assert len(lucene) == len(texts)
    ids, scores = lucene.search(queries[0], 10)
    assert ids.dtype == np.int64 and len(ids) == 10 and np.all(np.diff(scores) <= 0)


def test_allowed_and_row_id_mapping(lucene_scifact_index, lucene, scifact_slice):
    _, _, queries = scifact_slice
    top, _ = lucene.search(queries[1], 50)
    allowed = np.sort(top[40:])
    ids, _ = lucene.search(queries[1], 5, allowed=allowed)
    assert ids.tolist() == top[40:45].tolist()
    mapped = LuceneIndex(lucene_scifact_index, row_ids={str(p): 1000 + p for p in range(1000)})
    assert (mapped.search(queries[1], 5)[0] - 1000).tolist() == top[:5].tolist()
    partial = LuceneIndex(lucene_scifact_index, row_ids={})
    with pytest.raises(DataLoss, match="no row id"):
        partial.search(queries[1], 5)


def test_not_an_index_is_failed_precondition(tmp_path):
    if lucene_available():
        pytest.skip(lucene_available())
    with pytest.raises(FailedPrecondition, match="not a Lucene index"):
        LuceneIndex(tmp_path)
