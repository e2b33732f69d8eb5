"""Compression throughput: Ferret `Compress` over gRPC versus `ArcEncoder.compress` in-process.

    PYTHONPATH=. python bench/compress_throughput.py [--texts 128] [--request-size 16] [--repeats 2]

No ARC weights can be downloaded here, so both sides load the same randomly initialised ARC-Encoder in the
released format (a small shape: 256-dim encoder, 4 kept blocks, two 512-dim decoders; the tokenizer is the
tiny byte-level BPE of `ferret.testing.random_arc`). Texts are BEIR SciFact passages when the shared datasets
are present, else synthetic. The server is a real `ferret serve` process on a loopback port; clients send
`--request-size` texts per Compress call, 1 client or 4 concurrent ones. The baseline is `compress` on the
same requests in-process, so the ratio is the cost of the server (tokenising twice, queueing, float32 bytes
on the wire). Best of `--repeats` interleaved runs counts (the machine is shared). Target: ratio >= 0.8.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.embed_throughput import best_of, chunked, free_port, load_texts, print_ratios, run_clients  # noqa: E402
from ferret.client import Client  # noqa: E402
from ferret.encoders.base import EncodeOptions  # noqa: E402
from ferret.encoders.registry import ModelConfig, load_model  # noqa: E402
from ferret.testing.random_arc import TINY_CONFIG, random_checkpoint, train_tokenizer, write_checkpoint  # noqa: E402

SMALL = json.loads(json.dumps(TINY_CONFIG))
SMALL["model_args"].update(dim=256, n_layers=6, head_dim=32, hidden_dim=768, n_heads=8, n_kv_heads=4)
SMALL["bridge_args"].update(in_dim=256, hidden_dim=256, out_dim=512)
OPTIONS = {"decoders": ["llama", "mistral"], "device": "cpu", "dtype": "fp32"}


def run_local(encoder, requests: list[list[str]]) -> float:
    started = time.perf_counter()
    for texts in requests:
        encoder.compress(texts, EncodeOptions(), decoder="llama")
    return time.perf_counter() - started


def run_ferret(address: str, requests: list[list[str]], clients: int) -> float:
    return run_clients(address, requests, clients, lambda client, texts: client.compress(texts, decoder="llama"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--request-size", type=int, default=16, help="texts per Compress call")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    texts, source = load_texts(args.texts)
    requests = chunked(texts, args.request_size)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "arc"
        write_checkpoint(model_dir, SMALL, random_checkpoint(SMALL))
        train_tokenizer(model_dir)
        encoder = load_model(ModelConfig("arc-small", "arc-encoder", str(model_dir), OPTIONS))
        tokens = sum(len(ids) for ids in encoder.token_ids(texts, EncodeOptions()))
        config = Path(tmp) / "ferret.toml"
        config.write_text(f'[models.arc-small]\nfamily = "arc-encoder"\npath = "{model_dir}"\n'
                          f'options = {{ decoders = ["llama", "mistral"], device = "cpu", dtype = "fp32" }}\n')
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        server = subprocess.Popen([sys.executable, "-m", "ferret.cli", "serve", "--config", str(config),
                                   "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        address = f"127.0.0.1:{port}"
        try:
            with Client(address) as client:
                client.wait_ready(timeout=300)
                client.compress(texts[:4])  # warm-up
            run_local(encoder, [texts[:4]])
            modes = {
                "ArcEncoder.compress in-process, same requests": lambda: run_local(encoder, requests),
                "Ferret Compress over gRPC, 1 client": lambda: run_ferret(address, requests, 1),
                "Ferret Compress over gRPC, 4 concurrent clients": lambda: run_ferret(address, requests, 4),
            }
            best = best_of(modes, args.repeats)
        finally:
            server.terminate()
            server.wait(timeout=60)

    print(f"\nrandom ARC-Encoder (dim 256, 4 blocks, x=8, fp32), {len(texts)} {source}, {tokens} tokens, "
          f"{os.cpu_count()} CPUs, {args.request_size} texts per request, best of {args.repeats}\n")
    print_ratios(best, tokens, "ArcEncoder.compress in-process, same requests", "vs in-process")


if __name__ == "__main__":
    main()
