"""Locks: a reader-writer lock (many concurrent searches, one writer at a time, writers not starved) and
an exclusive lock between processes on a file (one process per data directory)."""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ferret.errors import FailedPrecondition


class ReadWriteLock:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class ProcessLock:
    """An exclusive lock between processes on a file (`flock`). The kernel drops it when the holding
    process dies, SIGKILL included, so a crash leaves the file behind but never a stale lock."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file: IO[str] | None = None

    def acquire(self, wait_s: float, what: str) -> None:
        """Take the lock, waiting up to `wait_s` seconds for its holder; FailedPrecondition naming `what` and
        the holder (pid and host) when it is still held then."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+", encoding="utf-8")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    file.seek(0)
                    holder = file.read().strip() or "?"
                    file.close()
                    raise FailedPrecondition(
                        f"{what} is held by another process ({holder}) after waiting {wait_s:g} s; "
                        "stop that process or wait until it exits, then retry"
                    ) from None
                time.sleep(0.1)
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()} on {socket.gethostname()}")
        file.flush()
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None
