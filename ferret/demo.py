"""`make demo`: a real Ferret server, a collection built through the gRPC client, hybrid search.

Starts the server on a free loopback port with the embedded models (all-MiniLM-L6-v2 and BM25) and a
temporary data directory, creates a collection with a MiniLM dense field and a BM25 field, upserts 300
bundled SciFact abstracts (ferret/data/SOURCE.md), and prints, for a few SciFact claims, the RRF hybrid
ranking with each source's own score and rank; documents SciFact marks relevant are starred.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS = Path(__file__).parent / "data" / "scifact-300.jsonl.gz"
# SciFact test claims with the documents their qrels mark relevant (all inside the bundled slice).
QUERIES = {
    "A deficiency of vitamin B12 increases blood levels of homocysteine.": {"5152028", "11705328"},
    "ADAR1 binds to Dicer to cleave pre-miRNA.": {"5953485"},
    "ALDH1 expression is associated with poorer prognosis in breast cancer.": {"45638119"},
}
BATCH = 64


def main() -> None:
    from ferret.client import Client
    from ferret.indexing.fields import SubSearch
    from ferret.indexing.store import Document
    from ferret.server.app import ServerThread
    from ferret.server.config import parse_config
    from ferret.server.logs import configure_logging

    configure_logging("WARNING", json_logs=False)
    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh]
    documents = [Document(r["_id"], f"{r['title']} {r['text']}", {"title": r["title"]}) for r in records]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as data_dir:
        config = parse_config({"server": {"port": 0, "data_dir": data_dir}})
        with ServerThread(config) as server, Client(server.address) as client:
            client.wait_ready()
            print(f"Ferret serving on {server.address} (ready in {time.perf_counter() - started:.1f} s)")
            client.create_collection("scifact", {
                "dense": [{"name": "minilm", "encoder": "all-MiniLM-L6-v2"}],
                "sparse": [{"name": "bm25", "encoder": "bm25"}],
            })
            started = time.perf_counter()
            for start in range(0, len(documents), BATCH):
                written = client.upsert("scifact", documents[start : start + BATCH])
            seconds = time.perf_counter() - started
            info = client.get_collection("scifact")
            print(f"collection 'scifact': {info.count} SciFact abstracts upserted in {seconds:.1f} s "
                  f"({info.count / seconds:.0f} docs/s), version {written.version}\n")
            for query, relevant in QUERIES.items():
                searches = [SubSearch("bm25", text=query), SubSearch("minilm", text=query)]
                result = client.query("scifact", searches, limit=5, with_metadata=True)
                print(f"query: {query!r}  (RRF k=60, {result.time_ms:.1f} ms)")
                for rank, hit in enumerate(result.hits, start=1):
                    per_source = "  ".join(
                        f"{name} {s.score:7.3f} (#{s.rank})" if (s := hit.sources.get(name)) else f"{name}    -      "
                        for name in ("bm25", "minilm")
                    )
                    star = "*" if hit.id in relevant else " "
                    print(f" {star}{rank}. rrf {hit.score:.4f}  {per_source}  {hit.id:>9}  "
                          f"{hit.metadata['title'][:60]}")
                print()
            print("* = relevant in SciFact's qrels")


if __name__ == "__main__":
    main()
