"""The `ferret` CLI: `embed` against the shared server, `serve` as a real process."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port

from ferret.cli import main
from ferret.client import Client

REPO = Path(__file__).resolve().parent.parent


def test_embed_json(ferret_server, ferret_client, capsys):
    texts = ["first text", "second text"]
    assert main(["embed", "--address", ferret_server.address, "--json", *texts]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"model", "vectors"} and out["model"] == "all-MiniLM-L6-v2"
    np.testing.assert_allclose(np.array(out["vectors"]), ferret_client.embed(texts).vectors, atol=1e-6)


def test_embed_options_and_plain_output(ferret_server, capsys):
    assert main(["embed", "--address", ferret_server.address, "--dimensions", "64", "--side", "query",
                 "hello there"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("all-MiniLM-L6-v2 dim=64 [") and line.endswith("hello there")


def test_embed_reports_server_errors(ferret_server, capsys):
    assert main(["embed", "--address", ferret_server.address, "--model", "nope", "x"]) == 1
    assert "NOT_FOUND: unknown model 'nope'" in capsys.readouterr().err


def _serve(*args: str, config: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "ferret.cli", "serve", "--config", config, *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_serve_process_serves_and_stops_gracefully_on_sigterm(tmp_path):
    config = tmp_path / "ferret.toml"
    config.write_text(
        f'[server]\nlog_level = "INFO"\ndata_dir = "{tmp_path / "data"}"\n\n[models.bm25]\nfamily = "bm25"\n'
    )
    port = free_port()
    proc = _serve("--port", str(port), config=str(config))
    try:
        with Client(f"127.0.0.1:{port}") as client:
            client.wait_ready(timeout=60)
            result = client.embed_sparse(["running cats"], return_tokens=True)
            assert result.model == "bm25" and result.tokens == [["run", "cat"]]
        # A second server on the same data directory would serve (and snapshot) indexes missing the
        # first one's writes: it is refused, naming the holder.
        second = _serve("--port", str(free_port()), config=str(config))
        _, second_err = second.communicate(timeout=120)
        assert second.returncode == 1 and "Traceback" not in second_err, second_err
        assert f"ferret serve: data directory {tmp_path / 'data'} is held by another process (pid {proc.pid} on " \
            in second_err
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {"listening", "serving", "stopped"} <= {entry["msg"] for entry in logs}


@pytest.mark.parametrize("toml, code, message", [
    ('[server]\nport = "x"\nbogus = 1\n', 2, "unknown keys ['bogus']"),
    ('[models.m]\nfamily = "no-such-family"\n', 1, "unknown model family 'no-such-family'"),
])
def test_serve_refuses_a_bad_config(tmp_path, toml, code, message):
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    proc = _serve("--port", str(free_port()), config=str(config))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code and message in err
