"""SQLite as Ferret uses it for acknowledged writes: WAL mode, synchronous=FULL, explicit transactions.

With synchronous=FULL a COMMIT returns only after the WAL is fsynced, so whatever a write RPC acknowledged
survives a crash. One connection per database, shared by threads under one re-entrant lock.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with WAL and synchronous=FULL."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


class Transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT` under `lock`; any exception rolls everything back."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock):
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()
