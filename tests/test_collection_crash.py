"""SIGKILL a process that writes to a collection; every acknowledged document must survive."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np

from ferret.encoders.registry import ModelRegistry
from ferret.indexing.collection import CollectionManager, Query, SubSearch

SCHEMA = {
    "dense": [{"name": "v", "encoder": "precomputed", "dim": 8, "metric": "cosine"}],
    "sparse": [{"name": "s", "encoder": "precomputed"}],
}

WRITER = """
import json, sys
import numpy as np
from ferret.encoders.registry import ModelRegistry
from ferret.indexing.collection import CollectionManager
from ferret.indexing.store import Document

data, start, schema = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
manager = CollectionManager(data, ModelRegistry({}))
if "c" not in manager.list():
    manager.create("c", schema)
collection = manager.get("c")
n = start
while True:
    batch = [Document(f"d{i}", f"text {i}", {"i": i},
                      {"v": np.random.default_rng(i).standard_normal(8), "s": ([i], [1.0])})
             for i in range(n, n + 5)]
    collection.upsert(batch)
    print(n + 4, flush=True)  # acknowledged up to this id
    if (n // 5) % 7 == 3:
        collection.snapshot()
    n += 5
"""


def test_acknowledged_documents_survive_sigkill(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    rng = random.Random(7)
    acked = -1
    attempted = -1
    for _ in range(10):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(data), str(acked + 1), json.dumps(SCHEMA)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 60
        lines_wanted = rng.randint(1, 6)
        lines = []
        while len(lines) < lines_wanted and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(int(line))
        time.sleep(rng.random() * 0.05)  # land the kill anywhere inside the next write or snapshot
        child.send_signal(signal.SIGKILL)
        child.wait()
        rest = child.stdout.read().split()
        if lines or rest:
            acked = max([acked, *lines, *map(int, rest)])
        attempted = acked + 5  # a write in flight may or may not have committed
    assert acked >= 9

    manager = CollectionManager(data, ModelRegistry({}))
    c = manager.get("c")
    present = {d.id for d in c.get([f"d{i}" for i in range(attempted + 1)])}
    assert {f"d{i}" for i in range(acked + 1)} <= present  # nothing acknowledged is lost
    assert c.count() == len(present)  # no phantom ids beyond what was written, no duplicates
    assert len(c._fields["v"]) == len(c._fields["s"]) == c.count()
    for i in range(acked + 1):  # each one found by its own sparse term and its own dense vector
        sparse = c.query(Query([SubSearch("s", vector=([i], [1.0]))], limit=2)).hits
        assert [h.id for h in sparse] == [f"d{i}"]
        dense = c.query(
            Query([SubSearch("v", vector=np.random.default_rng(i).standard_normal(8))], limit=1)
        ).hits
        assert [h.id for h in dense] == [f"d{i}"]
    manager.close(snapshot=False)
