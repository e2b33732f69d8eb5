"""Collections: the durable document store, the dense/sparse/BM25 indexes over it, fusion, filters."""
