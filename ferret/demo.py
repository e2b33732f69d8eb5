"""`make demo`: start a real Ferret server on the embedded defaults and use it through the gRPC client.

Starts the server on a free loopback port, waits for SERVING, lists the models, embeds a small corpus and
a query with the default dense model, ranks the corpus by cosine similarity, and shows the BM25
query-side sparse vector of the query.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Python is a programming language that emphasises code readability.",
    "The mitochondrion is the powerhouse of the cell, producing ATP.",
    "Mount Everest is the highest mountain above sea level, in the Himalayas.",
    "gRPC is a high-performance remote procedure call framework over HTTP/2.",
]
QUERY = "How do plants turn sunlight into energy?"


def main() -> None:
    from ferret.client import Client
    from ferret.server.app import ServerThread
    from ferret.server.config import parse_config
    from ferret.server.logs import configure_logging

    configure_logging("WARNING", json_logs=False)
    started = time.perf_counter()
    with ServerThread(parse_config({"server": {"port": 0}})) as server, Client(server.address) as client:
        client.wait_ready()
        print(f"Ferret serving on {server.address} (ready in {time.perf_counter() - started:.1f} s)\n")
        for m in client.list_models():
            size = f"dim={m.dimension}" if m.dimension else f"vocab={m.vocab_size}"
            print(f"  model {m.name:<18} {m.kind.value:<7} {size:<14} max_length={m.max_length}")

        docs = client.embed(CORPUS, side="document")
        query = client.embed([QUERY], side="query")
        scores = docs.vectors @ query.vectors[0]
        print(f"\nquery: {QUERY!r}  ({query.model}, {docs.vectors.shape[1]} dims, "
              f"server time {query.timing.total_ns / 1e6:.1f} ms)")
        print("  query vector: [" + ", ".join(f"{x:+.4f}" for x in query.vectors[0][:8]) + ", ...]")
        for rank, i in enumerate(scores.argsort()[::-1], start=1):
            print(f"  {rank}. {scores[i]:.4f}  {CORPUS[i]}")

        sparse = client.embed_sparse([QUERY], side="query", return_tokens=True)
        vector, tokens = sparse.vectors[0], sparse.tokens[0]
        print(f"\nBM25 query vector ({sparse.model}): "
              + ", ".join(f"{t}#{i}={v:g}" for t, i, v in zip(tokens, vector.indices, vector.values, strict=True)))


if __name__ == "__main__":
    main()
