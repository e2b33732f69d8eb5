"""Server operations with a controllable test model: health transitions, queue-full, deadlines, auth,
TLS, message limits, graceful shutdown and unexpected errors.

The test model family ("test-gated") is registered in FAMILIES here. Its model calls wait on a gate the
test opens, so queue states are reached deterministically rather than by timing.
"""

import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from ferret.client import Client
from ferret.encoders.base import EncodeOptions, Encoder, EncoderKind, ModelInfo, matryoshka
from ferret.encoders.registry import FAMILIES
from ferret.server.app import ServerThread
from ferret.server.config import parse_config

LOAD_GATE = threading.Event()


class GatedEncoder(Encoder):
    """Dense test model: one token per word; each model call waits for `gate`; "boom" raises."""

    def __init__(self, name: str, dimension: int):
        self.info = ModelInfo(name=name, family="test-gated", kind=EncoderKind.DENSE, max_length=64,
                              dimension=dimension)
        self.gate = threading.Event()
        self.gate.set()
        self.running = threading.Event()
        self.seen: list[str] = []

    def token_ids(self, texts: list[str], options: EncodeOptions) -> list[list[int]]:
        return [[0] * len(t.split()) for t in texts]

    def embed(self, texts: list[str], options: EncodeOptions) -> np.ndarray:
        self.running.set()
        assert self.gate.wait(30), "test gate never opened"
        self.seen.extend(texts)
        if "boom" in texts:
            raise RuntimeError("model exploded")
        base = np.array([[len(t)] for t in texts], dtype=np.float32)
        vectors = base + np.arange(self.info.dimension, dtype=np.float32)
        return matryoshka(vectors, options.dimensions, options.normalize)


def load_gated(name, path, options):
    if options.get("slow"):
        assert LOAD_GATE.wait(60), "load gate never opened"
    return GatedEncoder(name, int(options.get("dimension", 4)))


@pytest.fixture(scope="module", autouse=True)
def gated_family():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(FAMILIES, "test-gated", f"{__name__}:load_gated")
        yield


def start(server=None, batching=None, ready=True, **model_options) -> ServerThread:
    doc = {
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace_s": 5, "data_dir": tempfile.mkdtemp(),
                   **(server or {})},
        "batching": batching or {},
        "models": {"gated": {"family": "test-gated", "options": model_options}},
    }
    thread = ServerThread(parse_config(doc)).start()
    if ready:
        thread.wait_ready(timeout=30)
    return thread


def encoder_of(thread: ServerThread) -> GatedEncoder:
    return thread.server.state.models().get("gated")


def gauge(thread: ServerThread, name: str, **labels) -> float:
    return thread.server.state.metrics.registry.get_sample_value(name, labels) or 0.0


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def not_serving(client: Client) -> bool:
    try:
        return client.health(timeout=2) == "NOT_SERVING"
    except grpc.RpcError:  # already refusing new calls
        return True


def rpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def test_health_is_not_serving_while_models_load():
    LOAD_GATE.clear()
    thread = start(ready=False, slow=True)
    try:
        with Client(thread.address) as client:
            assert client.health() == "NOT_SERVING"
            assert client.health("ferret.v1.EncoderService") == "NOT_SERVING"
            err = rpc_error(lambda: client.embed(["too early"]))
            assert err.code() is grpc.StatusCode.UNAVAILABLE and "still loading" in err.details()
            LOAD_GATE.set()
            client.wait_ready(timeout=30)
            assert client.health("ferret.v1.EncoderService") == "SERVING"
            assert client.embed(["now"]).vectors.shape == (1, 4)
    finally:
        LOAD_GATE.set()
        thread.stop(grace=1)


def test_queue_full_is_refused_at_once_with_retry_after():
    with start(batching={"max_queue": 4, "max_batch_texts": 1}) as thread, Client(thread.address) as client, \
            ThreadPoolExecutor(2) as pool:
        model = encoder_of(thread)
        model.gate.clear()
        running = pool.submit(client.embed, ["first"])
        assert model.running.wait(10)
        queued = pool.submit(client.embed, ["q1", "q2", "q3", "q4"])
        wait_for(lambda: gauge(thread, "ferret_queue_depth", model="gated/embed") == 4)

        started = time.monotonic()
        err = rpc_error(lambda: client.embed(["one too many"]))
        assert time.monotonic() - started < 5  # refused at once, not after the queue drains
        assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "retry after" in err.details()
        assert float(dict(err.trailing_metadata())["retry-after"]) > 0
        # A request that could never fit is a caller error, not back-pressure.
        err = rpc_error(lambda: client.embed(["x"] * 5))
        assert err.code() is grpc.StatusCode.INVALID_ARGUMENT and "split it" in err.details()

        model.gate.set()
        assert running.result(30).vectors.shape == (1, 4)
        assert queued.result(30).vectors.shape == (4, 4)
        assert "one too many" not in model.seen


def test_expired_request_is_dropped_from_the_queue():
    with start() as thread, Client(thread.address) as client, ThreadPoolExecutor(1) as pool:
        model = encoder_of(thread)
        model.gate.clear()
        running = pool.submit(client.embed, ["first"])
        assert model.running.wait(10)
        err = rpc_error(lambda: client.embed(["late"], timeout=0.5))
        assert err.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        # Dropped while the model is still busy: it never reaches the model.
        wait_for(lambda: gauge(thread, "ferret_queue_depth", model="gated/embed") == 0)
        model.gate.set()
        running.result(30)
        assert "late" not in model.seen
        dropped = sum(gauge(thread, "ferret_queue_dropped_total", model="gated/embed", reason=r)
                      for r in ("deadline", "cancelled"))
        assert dropped == 1


@pytest.mark.parametrize("api_key", [None, "s3cret"])
def test_api_key_auth(api_key):
    with start(server={"api_key": api_key} if api_key else {}) as thread:
        with Client(thread.address) as anonymous:
            assert anonymous.health() == "SERVING"  # probes stay open
            if api_key:
                for call in (lambda: anonymous.embed(["a"]), lambda: list(anonymous.embed_stream([["a"]])),
                             anonymous.list_models):
                    err = rpc_error(call)
                    assert err.code() is grpc.StatusCode.UNAUTHENTICATED and "Bearer" in err.details()
            else:
                assert anonymous.embed(["a"]).vectors.shape == (1, 4)
        with Client(thread.address, api_key="wrong") as wrong:
            if api_key:
                assert rpc_error(lambda: wrong.embed(["a"])).code() is grpc.StatusCode.UNAUTHENTICATED
        with Client(thread.address, api_key=api_key) as client:
            assert client.embed(["a"]).vectors.shape == (1, 4)
            assert [r.vectors.shape for r in client.embed_stream([["a"], ["b", "c"]])] == [(1, 4), (2, 4)]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate")
def test_tls(tmp_path):
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    with start(server={"tls_cert": str(cert), "tls_key": str(key)}) as thread:
        address = f"localhost:{thread.server.port}"
        with Client(address, tls=cert) as client:
            assert client.embed(["secret text"]).vectors.shape == (1, 4)
        with Client(address) as plaintext:
            assert rpc_error(lambda: plaintext.embed(["a"], timeout=5)).code() is grpc.StatusCode.UNAVAILABLE


def test_messages_beyond_the_4_mib_default_round_trip():
    with start(batching={"max_text_chars": 2_000_000}, dimension=4096) as thread, Client(thread.address) as client:
        big_request = ["word " * 200_000] * 5  # 5 MB in
        assert client.embed(big_request).vectors.shape == (5, 4096)
        big_response = client.embed([f"text {i}" for i in range(320)])  # 5.2 MB out
        assert big_response.vectors.shape == (320, 4096)


def test_oversized_message_is_refused_and_the_server_lives():
    with start(server={"max_message_mb": 1}, batching={"max_text_chars": 2_000_000}) as thread, \
            Client(thread.address) as client:
        err = rpc_error(lambda: client.embed(["word " * 300_000]))  # 1.5 MB > 1 MiB
        assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in err.details()
        assert client.embed(["small"]).vectors.shape == (1, 4)


def test_unexpected_model_error_is_internal_and_the_server_lives():
    with start() as thread, Client(thread.address) as client:
        err = rpc_error(lambda: client.embed(["boom"]))
        assert err.code() is grpc.StatusCode.INTERNAL and "model exploded" in err.details()
        assert client.embed(["fine"]).vectors.shape == (1, 4)


def test_graceful_shutdown_drains_in_flight_calls():
    thread = start()
    model = encoder_of(thread)
    with Client(thread.address) as client, ThreadPoolExecutor(2) as pool:
        model.gate.clear()
        in_flight = pool.submit(client.embed, ["in flight"])
        assert model.running.wait(10)
        stopping = pool.submit(thread.stop, 10)
        wait_for(lambda: not_serving(client))
        model.gate.set()
        assert in_flight.result(30).vectors.shape == (1, 4)
        stopping.result(30)
        assert rpc_error(lambda: client.embed(["after"], timeout=5)).code() is grpc.StatusCode.UNAVAILABLE
