"""SIGKILL a `ferret serve` process while a client upserts; every acknowledged document must survive."""

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import numpy as np
from conftest import free_port

from ferret.client import Client
from ferret.indexing.fields import SubSearch

REPO = Path(__file__).resolve().parent.parent
SCHEMA = {
    "dense": [{"name": "v", "encoder": "precomputed", "dim": 8}],
    "sparse": [{"name": "s", "encoder": "precomputed"}, {"name": "text", "encoder": "bm25"}],
}
KILLS = 10


def vector(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(8)


def batch(start: int) -> list[dict]:
    return [
        {"id": f"d{i}", "text": f"token{i}", "vectors": {"v": vector(i), "s": ([i], [1.0])}}
        for i in range(start, start + 5)
    ]


def serve(config: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "ferret.cli", "serve", "--config", str(config), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_acknowledged_upserts_survive_server_sigkill(tmp_path):
    config = tmp_path / "ferret.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\nlog_level = "WARNING"\n\n[models.bm25]\nfamily = "bm25"\n'
    )
    rng = random.Random(11)
    acknowledged: set[str] = set()
    next_id = 0
    for kill in range(KILLS):
        port = free_port()
        proc = serve(config, port)
        with Client(f"127.0.0.1:{port}", timeout=30) as client:
            client.wait_ready(timeout=120)
            if kill == 0:
                client.create_collection("c", SCHEMA)
            killer = threading.Timer(rng.uniform(0.05, 0.4), proc.send_signal, (signal.SIGKILL,))
            killer.start()
            try:
                while True:  # until the kill lands, mid-request or between requests
                    documents = batch(next_id)
                    next_id += 5  # the batch in flight at the kill may or may not commit: never reuse ids
                    client.upsert("c", documents)
                    acknowledged.update(d["id"] for d in documents)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            killer.join()
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 20

    port = free_port()
    proc = serve(config, port)
    try:
        with Client(f"127.0.0.1:{port}", timeout=30) as client:
            client.wait_ready(timeout=120)
            written = [f"d{i}" for i in range(next_id)]
            present = [d.id for d in client.get("c", written).documents]
            assert acknowledged <= set(present)  # nothing acknowledged is lost
            assert len(present) == len(set(present)) == client.count("c")  # no phantoms, no duplicates
            for doc_id in present:
                i = int(doc_id[1:])
                sparse = client.query("c", [SubSearch("s", vector=([i], [1.0]))], limit=2)
                assert [h.id for h in sparse.hits] == [doc_id]
                dense = client.query("c", [SubSearch("v", vector=vector(i))], limit=1)
                assert [h.id for h in dense.hits] == [doc_id]
                bm25 = client.query("c", [SubSearch("text", text=f"token{i}")], limit=2)
                assert [h.id for h in bm25.hits] == [doc_id]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
