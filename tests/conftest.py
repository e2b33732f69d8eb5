import contextlib
import os
import socket
import subprocess
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from ferret.datasets import dataset_path, datasets_root  # noqa: E402


def require_dataset(name: str):
    """Path of a shared dataset, or skip the test with the reason why."""
    path = dataset_path(name)
    if path is None:
        pytest.skip(f"dataset {name!r} not found under {datasets_root()} (set FERRET_DATASETS to its parent)")
    return path


def free_port() -> int:
    """A TCP port free on loopback now (for a server that binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def shard_servers(root, count: int = 300, shards: int = 2, seed: int = 3):
    """A sharded collection served as in production: `shards` `ferret serve` processes on loopback, each with its
    shard of `test_shards.sharded_data(root, count, shards, seed)` (vectors precomputed, BM25 the only model).
    Yields (the unsharded collection "c" to compare with, the processes, their "host:port" addresses), the
    shards ready; a test may terminate a process to take its shard down."""
    from test_shards import sharded_data

    from ferret.client import Client

    whole, parts = sharded_data(root, count, shards, seed)
    processes, addresses = [], []
    try:
        for s, shard in enumerate(parts):
            shard.close()  # the shard processes open these data directories
            port = free_port()
            config = root / f"shard-{s}.toml"
            config.write_text(f'[server]\nhost = "127.0.0.1"\nport = {port}\ndata_dir = "{root / f"shard-{s}"}"\n'
                              'json_logs = false\n[models.bm25]\nfamily = "bm25"\n')
            processes.append(subprocess.Popen([sys.executable, "-m", "ferret.cli", "serve", "--config", str(config)],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            addresses.append(f"127.0.0.1:{port}")
        for address in addresses:
            with Client(address) as c:
                c.wait_ready(timeout=180)
        yield whole.get("c"), processes, addresses
    finally:
        for p in processes:
            p.terminate()
            p.wait(timeout=30)
        whole.close(snapshot=False)


def start_local_ray(attempts: int = 3):
    """`ray.init` of a small local cluster (2 CPUs, 100 MB object store) for a test module, tried again when
    its node does not come up: on a loaded 2-core machine Ray's fixed 30 s wait for its raylet to register
    is sometimes missed ("The current node timed out during startup")."""
    import ray

    for attempt in range(1, attempts + 1):
        try:
            return ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                            object_store_memory=100 * 1024 * 1024)
        except Exception as exc:
            ray.shutdown()
            if attempt == attempts or "timed out during startup" not in str(exc):
                raise


@pytest.fixture(scope="session")
def minilm_registry():
    """A ModelRegistry with the real all-MiniLM-L6-v2 and BM25, loaded once per test session."""
    from ferret.encoders.registry import DEFAULT_MODELS, ModelRegistry

    return ModelRegistry.from_configs(list(DEFAULT_MODELS))


@pytest.fixture(scope="session")
def scifact_slice():
    """(doc ids, texts "title text", test queries) of the first 1,000 SciFact documents."""
    import gzip
    import json

    folder = require_dataset("beir/scifact")
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for _, line in zip(range(1000), f, strict=False)]
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for _, line in zip(range(100), f, strict=False)]
    return [d["_id"] for d in docs], [f"{d['title']} {d['text']}" for d in docs], queries


@pytest.fixture(scope="session")
def lucene_scifact_index(scifact_slice, tmp_path_factory):
    """A Lucene index of `scifact_slice` built by Pyserini (docid = position in the slice)."""
    from ferret.indexing.lucene import lucene_available, start_jvm

    reason = lucene_available()
    if reason:
        pytest.skip(reason)
    start_jvm()
    from pyserini.index.lucene import LuceneIndexer

    directory = tmp_path_factory.mktemp("lucene") / "index"
    indexer = LuceneIndexer(str(directory), threads=1)
    for position, text in enumerate(scifact_slice[1]):
        indexer.add_doc_dict({"id": str(position), "contents": text})
    indexer.close()
    return directory


@pytest.fixture(scope="session")
def ferret_server(tmp_path_factory):
    """A real Ferret server on the embedded defaults, on a free loopback port, shared by the session.

    Loading all-MiniLM-L6-v2 costs seconds, so every test that only needs the defaults reuses this one.
    The Prometheus endpoint is on too (a free port: `ferret_server.server.metrics_port`).
    """
    from ferret.server.app import ServerThread
    from ferret.server.config import parse_config

    data_dir = str(tmp_path_factory.mktemp("ferret-data"))
    settings = {"host": "127.0.0.1", "port": 0, "metrics_port": 0, "data_dir": data_dir}
    server = ServerThread(parse_config({"server": settings})).start()
    server.wait_ready()
    yield server
    server.stop(grace=1)


@pytest.fixture(scope="session")
def ferret_client(ferret_server):
    from ferret.client import Client

    with Client(ferret_server.address) as client:
        yield client


@pytest.fixture(scope="session")
def tiny_arc_dir(tmp_path_factory):
    """A tiny random ARC-Encoder checkpoint with its tokenizer (decoders "0" and "1", hidden size 32)."""
    from ferret.testing.random_arc import build_tiny_arc

    path = tmp_path_factory.mktemp("arc")
    build_tiny_arc(path)
    return path


@pytest.fixture(scope="session")
def arc_server(tiny_arc_dir, tmp_path_factory):
    """A real server configured by a TOML file: the tiny ARC-Encoder ("arc-tiny", decoders llama and mistral,
    fp32 on CPU) and BM25, with a data directory for collections. Shared by the compression tests."""
    from ferret.server.app import ServerThread
    from ferret.server.config import load_config

    root = tmp_path_factory.mktemp("arc-server")
    config = root / "ferret.toml"
    config.write_text(f"""
[server]
host = "127.0.0.1"
port = 0
data_dir = "{root / 'data'}"

[models.arc-tiny]
family = "arc-encoder"
path = "{tiny_arc_dir}"
options = {{ decoders = ["llama", "mistral"], device = "cpu", dtype = "fp32" }}

[models.bm25]
family = "bm25"
""")
    with ServerThread(load_config(config)) as thread:
        thread.wait_ready()
        yield thread


@pytest.fixture(scope="session")
def arc_encoder(tiny_arc_dir):
    """The in-process twin of `arc_server`'s "arc-tiny" (same checkpoint and options)."""
    from ferret.encoders.registry import ModelConfig, load_model

    options = {"decoders": ["llama", "mistral"], "device": "cpu", "dtype": "fp32"}
    return load_model(ModelConfig(name="arc-tiny", family="arc-encoder", path=str(tiny_arc_dir), options=options))


@pytest.fixture(scope="session")
def splice_and_generate(tiny_arc_dir):
    """A check of one retrieved compressed document in a tiny random Llama's prompt: `check(compressed, text,
    pooling_factor)` splices it, compares with the prompt holding the text itself (the document shrinks from
    n tokens to m + 1 positions, the whole prompt about x times) and generates a few tokens from it."""
    import math

    import torch

    from ferret.client.arc import splice_compressed
    from ferret.testing.random_arc import tiny_llama_decoder

    decoder, tokenizer = tiny_llama_decoder(tiny_arc_dir)
    question = "\nQuestion: what does the encoder pool?\nAnswer:"

    def check(compressed, text: str, pooling_factor: int) -> None:
        compressed_prompt = splice_compressed(decoder, tokenizer, [["Document: ", compressed, question]])
        full_prompt = splice_compressed(decoder, tokenizer, [["Document: ", text, question]])
        n, m = compressed.num_tokens, compressed.m
        assert n == len(tokenizer(text, add_special_tokens=False)["input_ids"]) and m == math.ceil(n / pooling_factor)
        compressed_len, full_len = compressed_prompt.inputs_embeds.shape[1], full_prompt.inputs_embeds.shape[1]
        assert full_len - compressed_len == n - (m + 1)  # only the document shrank: n tokens -> m vectors + <Cont>
        assert int(compressed_prompt.compressed_positions.sum()) == m + 1
        assert n / (m + 1) >= 0.95 * pooling_factor  # x times fewer positions for the document
        assert full_len / compressed_len > 0.7 * pooling_factor  # and the whole prompt, question included
        with torch.no_grad():
            out = decoder.generate(inputs_embeds=compressed_prompt.inputs_embeds,
                                   attention_mask=compressed_prompt.attention_mask, max_new_tokens=5,
                                   do_sample=False, pad_token_id=tokenizer.eos_token_id)
        assert out.shape == (1, 5) and all(0 <= t < len(tokenizer) for t in out[0].tolist())

    return check


TINY_LM_CORPUS = [
    "weather forecast rain temperature city tomorrow",
    "stock price shares market finance company",
    "translate text language french spanish",
    "rewritten request user tools available some tool description",
]


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory):
    """A tiny random GPT-2 with a byte-level BPE tokenizer (QTA rewriter tests)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-lm")
    # Byte-level BPE: every string encodes, so a random model never emits an unknown token.
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TINY_LM_CORPUS * 3, vocab_size=300, special_tokens=["<eos>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<eos>", pad_token="<eos>")
    tokenizer.save_pretrained(path)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=1024,
        n_embd=32,
        n_layer=2,
        n_head=2,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(path)
    return path
