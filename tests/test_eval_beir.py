"""`ferret eval beir` on a small SciFact slice through a real server, and its measures on hand-made cases."""

from __future__ import annotations

import gzip
import json

import pytest

from ferret.cli import main
from ferret.eval_cli import collection_name
from ferret.evaluation.beir import drop_self_hits, evaluate, load_beir
from ferret.indexing.snapshot import sha256_file

SLICE_QUERIES = 20
SLICE_OTHER_DOCS = 40
# nDCG@10 measured on this 59-document slice: BM25 0.913, MiniLM 0.982, RRF hybrid 0.932; floors 0.05 below.
# Random rankings, or ids mixed up between the collection and the qrels, land far under them.
NDCG_FLOORS = {"bm25": 0.86, "dense": 0.93, "hybrid": 0.88}


def _write_beir(folder, docs, queries, qrels) -> None:
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in docs)
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(q) + "\n" for q in queries)
    rows = [f"{q}\t{d}\t{s}\n" for q, judged in qrels.items() for d, s in judged.items()]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(rows))


@pytest.fixture(scope="module")
def scifact_beir_slice(tmp_path_factory):
    """The first SLICE_QUERIES SciFact test queries, their relevant documents and SLICE_OTHER_DOCS others."""
    from conftest import require_dataset

    source = load_beir(require_dataset("beir/scifact"), "test")
    queries = source.queries[:SLICE_QUERIES]
    qrels = {q.id: source.qrels[q.id] for q in queries}
    relevant = {d for judged in qrels.values() for d in judged}
    with gzip.open(source.corpus, "rt", encoding="utf-8") as fh:
        corpus = [json.loads(line) for line in fh]
    others = [d for d in corpus if d["_id"] not in relevant][:SLICE_OTHER_DOCS]
    docs = [d for d in corpus if d["_id"] in relevant] + others
    folder = tmp_path_factory.mktemp("beir") / "scifact-slice"
    _write_beir(folder, docs, [{"_id": q.id, "text": q.text} for q in queries], qrels)
    return folder


def _eval_json(capsys, *argv: str) -> dict:
    capsys.readouterr()
    assert main(["eval", "beir", *argv, "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def test_slice_through_the_server(scifact_beir_slice, ferret_server, ferret_client, capsys):
    address = ["--address", ferret_server.address]
    bm25 = _eval_json(capsys, str(scifact_beir_slice), "--retriever", "bm25", *address)
    name = bm25["collection"]
    version = ferret_client.get_collection(name).version
    assert bm25["documents"] == ferret_client.count(name) > SLICE_OTHER_DOCS
    assert bm25["queries"] == SLICE_QUERIES
    for key in ("ndcg@10", "recall@100", "mrr@10"):
        assert 0.0 <= bm25[key] <= 1.0

    dense = _eval_json(capsys, str(scifact_beir_slice), "--retriever", "dense", *address)
    hybrid = _eval_json(capsys, str(scifact_beir_slice), "--retriever", "hybrid", "--fusion", "rrf", *address)
    # Reused: same collection, nothing written again.
    assert dense["collection"] == hybrid["collection"] == name
    assert ferret_client.get_collection(name).version == version
    # Every relevant document is in the slice and it has few others: both retrievers find most of them.
    assert dense["recall@100"] >= 0.9 and hybrid["recall@100"] >= 0.9
    for report in (bm25, dense, hybrid):
        assert report["ndcg@10"] >= NDCG_FLOORS[report["retriever"]], report
    assert hybrid["fusion"] == "rrf" and dense["fusion"] is None

    few = _eval_json(capsys, str(scifact_beir_slice), "--retriever", "bm25", "--limit-queries", "3", *address)
    assert few["queries"] == 3


def test_self_hit_not_counted_in_process_server(tmp_path, capsys):
    """q1 is also a corpus document with the same text: it must not count as its own hit."""
    folder = tmp_path / "args"
    docs = [
        {"_id": "q1", "title": "", "text": "ferrets sleep most of the day in dark burrows"},
        {"_id": "d2", "title": "Ferret sleep", "text": "ferrets sleep up to eighteen hours a day"},
        {"_id": "d3", "title": "", "text": "the stock market closed higher on friday"},
    ]
    _write_beir(folder, docs, [{"_id": "q1", "text": docs[0]["text"]}], {"q1": {"d2": 1}})
    data_dir = str(tmp_path / "data")
    report = _eval_json(capsys, str(folder), "--retriever", "bm25", "--data-dir", data_dir)
    assert report["mrr@10"] == 1.0 and report["ndcg@10"] == 1.0
    assert report["collection"] == collection_name("args", sha256_file(folder / "corpus.jsonl"),
                                                   "all-MiniLM-L6-v2")


def test_bad_folder_and_split_say_what_to_fix(tmp_path, capsys):
    assert main(["eval", "beir", str(tmp_path / "nope"), "--retriever", "bm25", "--quiet"]) == 1
    assert "does not exist" in capsys.readouterr().err
    folder = tmp_path / "beir"
    _write_beir(folder, [{"_id": "d1", "text": "x"}], [{"_id": "q1", "text": "x"}], {"q1": {"d1": 1}})
    assert main(["eval", "beir", str(folder), "--retriever", "bm25", "--split", "dev", "--quiet"]) == 1
    assert "splits present: ['test']" in capsys.readouterr().err


def test_measures_and_self_hit_removal():
    qrels = {"a": {"d1": 1, "d2": 0}, "b": {"d3": 2}}
    run = drop_self_hits({"a": [("a", 3.0), ("d2", 2.0), ("d1", 1.0)], "b": []})
    assert run == {"a": [("d2", 2.0), ("d1", 1.0)], "b": []}
    measured = evaluate(qrels, run)
    assert measured["mrr@10"] == pytest.approx(0.5 / 2)  # a: first relevant at rank 2; b: nothing -> 0
    assert measured["recall@100"] == pytest.approx(0.5)
    assert measured["ndcg@10"] == pytest.approx((1 / 1.5849625) / 2, rel=1e-5)  # 1/log2(3), averaged with 0


def test_score_ties_are_ordered_by_doc_id_not_by_serving_order():
    """Equal scores rank by trec_eval's rule (doc id), as BEIR and MTEB evaluate, whatever order they came in."""
    qrels = {"q": {"d1": 1}}
    served_first = evaluate(qrels, {"q": [("d1", 1.0), ("d2", 1.0)]})
    served_last = evaluate(qrels, {"q": [("d2", 1.0), ("d1", 1.0)]})
    assert served_first == served_last


def test_partly_built_collection_is_completed(tmp_path, ferret_server, ferret_client, capsys):
    """A build cut short: the next run upserts only the documents the collection lacks."""
    from ferret.eval_cli import collection_schema

    folder = tmp_path / "partial"
    docs = [{"_id": f"d{i}", "title": "", "text": f"document number {i} about ferrets"} for i in range(5)]
    _write_beir(folder, docs, [{"_id": "q1", "text": "document number 3"}], {"q1": {"d3": 1}})
    name = collection_name("partial", sha256_file(folder / "corpus.jsonl"), "all-MiniLM-L6-v2")
    ferret_client.create_collection(name, collection_schema("all-MiniLM-L6-v2"))
    ferret_client.upsert(name, [{"id": "d0", "text": "document number 0 about ferrets"}])
    before = ferret_client.get_collection(name).version
    report = _eval_json(capsys, str(folder), "--retriever", "bm25", "--address", ferret_server.address)
    assert report["collection"] == name and report["documents"] == 5
    assert ferret_client.get_collection(name).version == before + 1  # one upsert batch: d1..d4
    assert report["mrr@10"] == 1.0
