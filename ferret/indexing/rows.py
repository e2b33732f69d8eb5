"""Row ids handed to an index: the checks every index applies before a write."""

from __future__ import annotations

import numpy as np

from ferret.errors import InvalidArgument


def checked_row_ids(ids: np.ndarray, count: int, items: str) -> np.ndarray:
    """`ids` as int64, one per item (`items` names them in the message) and each at most once."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(ids) != count:
        raise InvalidArgument(f"{len(ids)} ids for {count} {items}: give one id per {items.rstrip('s')}")
    if len(np.unique(ids)) != len(ids):
        raise InvalidArgument("duplicate ids in one add: each row id may appear once")
    return ids
