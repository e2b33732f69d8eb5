"""LLM-backbone encoder families against independent references computed here from raw HF outputs.

Every model is a tiny randomly initialised model of the real architecture, saved with `save_pretrained`
and loaded through Ferret's registry. References use the HF model directly with an explicit attention mask
and explicit pooling, one text at a time (no padding), and never call Ferret's encoder code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ferret.encoders.base import EncodeOptions, EncoderError, ModelLoadError, Side
from ferret.encoders.registry import ModelConfig, default_minilm_path, load_model
from ferret.testing.random_models import (
    DecoderShape,
    build_bert_mlm,
    build_bpe_tokenizer,
    build_decoder,
    build_lora_adapter,
    copy_without,
)

TOL = 1e-5
TARGET = "the protein cell study of cancer"
LONGER = "what is a sparse vector in retrieval and how fast is the search engine for python data"
SHORTER = "water"
QUERY = EncodeOptions(side=Side.QUERY)
DOC = EncodeOptions(side=Side.DOCUMENT)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    build_bpe_tokenizer(root / "bpe")
    out = {"bpe": root / "bpe"}
    for arch in ("mistral", "llama", "qwen2"):
        out[f"{arch}-lm"] = build_decoder(root / f"{arch}-lm", arch, root / "bpe")
    for arch in ("llama", "qwen2"):
        out[f"{arch}-base"] = build_decoder(root / f"{arch}-base", arch, root / "bpe", causal_lm=False)
        out[f"{arch}-lora"] = build_lora_adapter(root / f"{arch}-lora", out[f"{arch}-base"], causal_lm=False)
    out["mistral-lora"] = build_lora_adapter(root / "mistral-lora", out["mistral-lm"], causal_lm=True)
    out["bert"] = build_bert_mlm(root / "bert", default_minilm_path())
    return out


def load(family: str, path: Path, **options):
    return load_model(ModelConfig(name=f"tiny-{family}", family=family, path=str(path), options=options))


def token_ids(tokenizer_dir: Path, text: str, special: bool) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)(text, add_special_tokens=special)["input_ids"]


def raw_outputs(model, ids: list[int], bidirectional: bool = False) -> torch.Tensor:
    """Logits (LM heads) or last hidden states of one unpadded sequence, with an explicit attention mask."""
    n = len(ids)
    if bidirectional:
        # A 4-D additive mask is used as given: all zeros = every position sees every position.
        mask = torch.zeros(1, 1, n, n)
    else:
        mask = torch.ones(1, n, dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), attention_mask=mask, position_ids=torch.arange(n)[None])
    return (out.logits if hasattr(out, "logits") else out.last_hidden_state)[0].float()


def splade_reference(logits: torch.Tensor, positions: slice, pooling: str = "max") -> np.ndarray:
    weights = torch.log1p(torch.relu(logits[positions]))
    return (weights.max(0).values if pooling == "max" else weights.sum(0)).numpy()


def dense_of(vector, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.float32)
    out[vector.indices] = vector.values
    assert np.all(np.diff(vector.indices.astype(np.int64)) > 0)
    return out


def l2(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def assert_batch_invariant(encode) -> None:
    alone = encode([TARGET])[0]
    batched = encode([LONGER, TARGET, SHORTER])[1]
    np.testing.assert_allclose(batched, alone, atol=TOL, rtol=0)


# ---------------------------------------------------------------- SPLADE on a masked LM (BERT)


@pytest.mark.parametrize("pooling", ["max", "sum"])
def test_masked_lm_splade_matches_reference(models, pooling):
    from transformers import AutoModelForMaskedLM

    # A logits block smaller than one position's vocabulary forces the chunked path (one position a block).
    encoder = load("splade", models["bert"], pooling=pooling, max_logit_elements=1000)
    reference_model = AutoModelForMaskedLM.from_pretrained(models["bert"]).eval()
    vocab = encoder.info.vocab_size
    got = encoder.embed_sparse([LONGER, TARGET], DOC)
    for text, vector in zip([LONGER, TARGET], got, strict=True):
        ids = token_ids(models["bert"], text, special=True)
        expected = splade_reference(raw_outputs(reference_model, ids), slice(None), pooling)
        np.testing.assert_allclose(dense_of(vector, vocab), expected, atol=TOL, rtol=0)
    assert encoder.decode_tokens(np.array([101, 102])) == ["[CLS]", "[SEP]"]


@pytest.mark.parametrize("side", ["left", "right"])
def test_masked_lm_splade_batch_invariant(models, side):
    encoder = load("splade", models["bert"], padding_side=side)
    assert_batch_invariant(
        lambda texts: [dense_of(v, encoder.info.vocab_size) for v in encoder.embed_sparse(texts, DOC)]
    )


def test_splade_max_active_dims_per_side(models):
    encoder = load("splade", models["bert"], max_active_dims={"query": 5, "document": 40})
    full = load("splade", models["bert"])
    reference = dense_of(full.embed_sparse([TARGET], QUERY)[0], full.info.vocab_size)
    query = encoder.embed_sparse([TARGET], QUERY)[0]
    assert len(query.indices) == 5
    top5 = np.sort(np.argsort(-reference)[:5])
    np.testing.assert_array_equal(query.indices, top5)
    np.testing.assert_allclose(query.values, reference[top5], atol=TOL)
    assert len(encoder.embed_sparse([TARGET], DOC)[0].indices) == 40


# ---------------------------------------------------------------- sentence-transformers SparseEncoder dir


@pytest.fixture(scope="module")
def sparse_encoder_dir(models, tmp_path_factory) -> Path:
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    directory = tmp_path_factory.mktemp("st-splade")
    mlm = Transformer(str(models["bert"]), transformer_task="fill-mask")
    SparseEncoder(modules=[mlm, SpladePooling("max")], device="cpu").save(str(directory))
    return directory


def test_sparse_encoder_directory_matches_reference(models, sparse_encoder_dir):
    from transformers import AutoModelForMaskedLM

    encoder = load("sparse-encoder", sparse_encoder_dir, max_active_dims={"document": 30})
    reference_model = AutoModelForMaskedLM.from_pretrained(models["bert"]).eval()
    vocab = encoder.info.vocab_size
    got = encoder.embed_sparse([LONGER, TARGET, SHORTER], QUERY)
    for text, vector in zip([LONGER, TARGET, SHORTER], got, strict=True):
        ids = token_ids(models["bert"], text, special=True)
        np.testing.assert_allclose(
            dense_of(vector, vocab),
            splade_reference(raw_outputs(reference_model, ids), slice(None)),
            atol=TOL,
            rtol=0,
        )
    assert len(encoder.embed_sparse([LONGER], DOC)[0].indices) == 30


def test_sparse_encoder_refuses_plain_model_dir(models):
    with pytest.raises(ModelLoadError, match="tiny-sparse-encoder.*modules.json"):
        load("sparse-encoder", models["bert"])


# ---------------------------------------------------------------- echo SPLADE on decoder LLMs


def echo_ids(tokenizer_dir: Path, text: str, first: str, second: str, last: str) -> tuple[list[int], slice]:
    """<s> first TEXT second TEXT last </s>, each piece tokenized on its own; the second copy's slice."""
    pieces = [token_ids(tokenizer_dir, p, special=False) for p in (first, second, last)]
    text_ids = token_ids(tokenizer_dir, text, special=False)
    ids = [1] + pieces[0] + text_ids + pieces[1]
    second_copy = slice(len(ids), len(ids) + len(text_ids))
    return ids + text_ids + pieces[2] + [2], second_copy


@pytest.mark.parametrize("arch", ["mistral", "llama", "qwen2"])
def test_echo_splade_matches_reference(models, arch):
    from transformers import AutoModelForCausalLM

    encoder = load("echo-splade", models[f"{arch}-lm"])
    reference_model = AutoModelForCausalLM.from_pretrained(models[f"{arch}-lm"]).eval()
    for text, vector in zip([TARGET, LONGER], encoder.embed_sparse([TARGET, LONGER], DOC), strict=True):
        ids, second = echo_ids(models["bpe"], text, "Document: ", "\nDocument again: ", "")
        expected = splade_reference(raw_outputs(reference_model, ids), second)
        np.testing.assert_allclose(dense_of(vector, encoder.info.vocab_size), expected, atol=TOL, rtol=0)
        # The first copy is not pooled: pooling every position would give a different vector.
        assert (
            np.abs(splade_reference(raw_outputs(reference_model, ids), slice(None)) - expected).max() > 1e-3
        )


@pytest.mark.parametrize("arch", ["mistral", "llama", "qwen2"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_echo_splade_batch_invariant(models, arch, side):
    encoder = load("echo-splade", models[f"{arch}-lm"], padding_side=side)
    assert_batch_invariant(
        lambda texts: [dense_of(v, encoder.info.vocab_size) for v in encoder.embed_sparse(texts, QUERY)]
    )


def test_echo_pools_only_second_copy(models, tmp_path):
    """Changing the first copy's template text moves the output, and only through attention.

    With every attention output projection zeroed, no position sees any other; then a different first
    template leaves the pooled vector exactly unchanged, so nothing of the first copy is pooled directly.
    """
    from transformers import AutoModelForCausalLM

    templates = [
        {"document_template": "Document: {text}\nDocument again: {text}"},
        {"document_template": "Passage of a web page: {text}\nDocument again: {text}"},
    ]
    normal = [
        load("echo-splade", models["mistral-lm"], **t).embed_sparse([TARGET], DOC)[0] for t in templates
    ]
    assert not np.array_equal(dense_of(normal[0], 512), dense_of(normal[1], 512))

    model = AutoModelForCausalLM.from_pretrained(models["mistral-lm"])
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
    model.save_pretrained(tmp_path / "no-attention")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "no-attention" / name).write_bytes((models["mistral-lm"] / name).read_bytes())
    isolated = [
        load("echo-splade", tmp_path / "no-attention", **t).embed_sparse([TARGET], DOC)[0] for t in templates
    ]
    np.testing.assert_array_equal(dense_of(isolated[0], 512), dense_of(isolated[1], 512))


def test_echo_splade_256k_vocabulary(models, tmp_path):
    from transformers import AutoModelForCausalLM

    # hidden, intermediate, layers, heads, kv heads, vocabulary
    shape = DecoderShape(8, 16, 1, 2, 1, vocab_size=256_000)
    path = build_decoder(tmp_path / "mistral-256k", "mistral", models["bpe"], shape=shape)
    encoder = load("echo-splade", path, max_active_dims=200, max_logit_elements=1 << 20)
    vector = encoder.embed_sparse([TARGET], DOC)[0]
    assert encoder.info.vocab_size == 256_000 and vector.indices.max() > 65_535 and len(vector.indices) == 200
    ids, second = echo_ids(models["bpe"], TARGET, "Document: ", "\nDocument again: ", "")
    expected = splade_reference(raw_outputs(AutoModelForCausalLM.from_pretrained(path).eval(), ids), second)
    np.testing.assert_allclose(vector.values, expected[vector.indices], atol=TOL, rtol=0)
    assert expected[vector.indices].min() >= np.sort(expected)[-200]
    assert encoder.decode_tokens(np.array([5, 200_000]))[1] == "[id 200000]"


def test_echo_splade_with_merged_lora(models):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    encoder = load("echo-splade", models["mistral-lm"], adapter=str(models["mistral-lora"]))
    base = AutoModelForCausalLM.from_pretrained(models["mistral-lm"])
    merged = PeftModel.from_pretrained(base, models["mistral-lora"]).merge_and_unload().eval()
    ids, second = echo_ids(models["bpe"], TARGET, "Document: ", "\nDocument again: ", "")
    expected = splade_reference(raw_outputs(merged, ids), second)
    got = dense_of(encoder.embed_sparse([TARGET], DOC)[0], encoder.info.vocab_size)
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
    without = dense_of(load("echo-splade", models["mistral-lm"]).embed_sparse([TARGET], DOC)[0], 512)
    assert np.abs(without - got).max() > 1e-3


@pytest.mark.parametrize("side", ["left", "right"])
def test_bidirectional_splade_without_echo(models, side):
    from transformers import AutoModelForCausalLM

    encoder = load("echo-splade", models["llama-lm"], echo=False, padding_side=side)
    reference_model = AutoModelForCausalLM.from_pretrained(models["llama-lm"]).eval()
    ids = [1] + token_ids(models["bpe"], TARGET, special=False) + [2]
    expected = splade_reference(raw_outputs(reference_model, ids, bidirectional=True), slice(None))
    vocab = encoder.info.vocab_size
    np.testing.assert_allclose(
        dense_of(encoder.embed_sparse([TARGET], DOC)[0], vocab), expected, atol=TOL, rtol=0
    )
    assert_batch_invariant(lambda texts: [dense_of(v, vocab) for v in encoder.embed_sparse(texts, DOC)])


# ---------------------------------------------------------------- KaLM-Embedding-V2 style


def test_kalm_matches_reference_with_instruction_and_matryoshka(models):
    from transformers import AutoModel

    encoder = load("kalm", models["qwen2-base"])
    reference_model = AutoModel.from_pretrained(models["qwen2-base"]).eval()
    task = "Given a claim, find documents that support it"
    options = EncodeOptions(side=Side.QUERY, instruction=task)
    got = encoder.embed([TARGET, LONGER], options)
    half = encoder.embed([TARGET, LONGER], EncodeOptions(side=Side.QUERY, instruction=task, dimensions=16))
    docs = encoder.embed([TARGET], DOC)
    for row, text in enumerate([TARGET, LONGER]):
        ids = token_ids(models["qwen2-base"], f"Instruct: {task} \n Query: {text}", special=True)
        mean = raw_outputs(reference_model, ids, bidirectional=True).mean(0).numpy()
        np.testing.assert_allclose(got[row], l2(mean), atol=TOL, rtol=0)
        np.testing.assert_allclose(half[row], l2(mean[:16]), atol=TOL, rtol=0)
    doc_ids = token_ids(models["qwen2-base"], TARGET, special=True)
    doc_mean = raw_outputs(reference_model, doc_ids, bidirectional=True).mean(0).numpy()
    np.testing.assert_allclose(docs[0], l2(doc_mean), atol=TOL, rtol=0)


@pytest.mark.parametrize("side", ["left", "right"])
def test_kalm_batch_invariant(models, side):
    encoder = load("kalm", models["qwen2-base"], padding_side=side)
    assert_batch_invariant(lambda texts: encoder.embed(texts, QUERY))
    assert_batch_invariant(lambda texts: encoder.embed(texts, DOC))


def test_kalm_is_bidirectional(models):
    """A later token changes the first position's state (pooled with weight 1/n); causally it cannot."""
    encoder = load("kalm", models["qwen2-base"])
    causal = load("revela", models["qwen2-base"])
    a, b = "the protein cell study", "the protein cell water"
    for enc, should_move in ((encoder, True), (causal, False)):
        seqs = enc.sequences([a, b], DOC)
        assert seqs[0].ids[:-2] == seqs[1].ids[:-2] and seqs[0].ids != seqs[1].ids
        with torch.no_grad():
            hidden = enc.hidden_states(enc.pad(seqs))
        moved = (hidden[0, 0] - hidden[1, 0]).abs().max().item()
        assert (moved > 1e-4) is should_move, (enc.info.family, moved)


# ---------------------------------------------------------------- Revela style


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_revela_matches_reference(models, arch, side):
    from peft import PeftModel
    from transformers import AutoModel

    encoder = load("revela", models[f"{arch}-base"], adapter=str(models[f"{arch}-lora"]), padding_side=side)
    base = AutoModel.from_pretrained(models[f"{arch}-base"])
    merged = PeftModel.from_pretrained(base, models[f"{arch}-lora"]).merge_and_unload().eval()
    texts = [LONGER, TARGET, SHORTER]
    for options, prefix in ((QUERY, "query:  "), (DOC, "passage:  ")):
        got = encoder.embed(texts, options)
        for row, text in enumerate(texts):
            ids = token_ids(models[f"{arch}-base"], prefix + text, special=True) + [2]
            last = raw_outputs(merged, ids)[-1].numpy()
            np.testing.assert_allclose(got[row], l2(last), atol=TOL, rtol=0)
    assert_batch_invariant(lambda t: encoder.embed(t, DOC))
    unmerged = load("revela", models[f"{arch}-base"]).embed([TARGET], DOC)
    assert np.abs(unmerged - encoder.embed([TARGET], DOC)).max() > 1e-3


# ---------------------------------------------------------------- input checks and bad configs


def test_too_long_text_is_an_encoder_error_unless_truncating(models):
    encoder = load("echo-splade", models["qwen2-lm"], max_length=24)
    long_text = " ".join([LONGER] * 3)
    with pytest.raises(EncoderError, match="tokens as fed to model 'tiny-echo-splade'.*at most 24"):
        encoder.embed_sparse([long_text], EncodeOptions(truncate=False))
    (seq,) = encoder.sequences([long_text], DOC)
    # Both copies are cut alike: each is the same prefix of the text.
    kept = token_ids(models["bpe"], long_text, special=False)[: seq.pool_end - seq.pool_start]
    first = 1 + len(token_ids(models["bpe"], "Document: ", special=False))
    assert len(seq.ids) <= 24 and len(kept) > 0
    assert seq.ids[seq.pool_start : seq.pool_end] == kept == seq.ids[first : first + len(kept)]
    kalm = load("kalm", models["qwen2-base"], max_length=8)
    assert len(kalm.token_ids([long_text], DOC)[0]) > 8
    assert kalm.embed([long_text], DOC).shape == (1, 32)
    with pytest.raises(EncoderError, match="tiny-kalm.*dense"):
        kalm.embed_sparse([TARGET], DOC)
    with pytest.raises(EncoderError, match="dimensions=64"):
        kalm.embed([TARGET], EncodeOptions(dimensions=64))


def mistral_with_hidden(tmp_path: Path, models) -> Path:
    shape = DecoderShape(48, 64, 1, 4, 2)
    return build_decoder(tmp_path / "mistral-48", "mistral", models["bpe"], shape=shape)


def test_bad_configs_fail_at_load_naming_model_and_problem(models, tmp_path):
    cases = [
        ("kalm", tmp_path / "nowhere", {}, "tiny-kalm.*does not exist"),
        ("revela", models["bpe"], {}, "tiny-revela.*no config.json"),
        ("kalm", models["mistral-lm"], {}, "tiny-kalm.*model_type 'mistral'"),
        ("splade", models["qwen2-lm"], {}, "tiny-splade.*model_type 'qwen2'"),
        ("echo-splade", models["bert"], {}, "tiny-echo-splade.*model_type 'bert'"),
        ("echo-splade", models["qwen2-base"], {}, "tiny-echo-splade.*lacks weights.*lm_head"),
        ("echo-splade", models["qwen2-lm"], {"query_template": "{text}"}, "exactly 2 time"),
        ("kalm", models["qwen2-base"], {"dtype": "int3"}, "dtype 'int3'"),
        ("kalm", models["qwen2-base"], {"poolin": "mean"}, "unknown options \\['poolin'\\]"),
        ("revela", models["llama-base"], {"adapter": str(models["qwen2-base"])}, "no adapter_config.json"),
        ("revela", models["llama-base"], {"adapter": str(models["mistral-lora"])}, "adapter .* does not fit"),
        ("splade", models["bert"], {"max_active_dims": 0}, "positive integer"),
    ]
    weightless = copy_without(models["llama-base"], tmp_path / "weightless", "*.safetensors")
    cases.append(("revela", weightless, {}, "tiny-revela.*cannot load weights"))
    tokenizerless = copy_without(models["llama-base"], tmp_path / "tokenizerless", "tokenizer*")
    cases.append(("revela", tokenizerless, {}, "tiny-revela"))
    wider = mistral_with_hidden(tmp_path, models)
    wider_lora = build_lora_adapter(tmp_path / "wider-lora", wider, causal_lm=True)
    cases.append(
        ("echo-splade", models["mistral-lm"], {"adapter": str(wider_lora)}, "adapter .* does not fit")
    )
    for family, path, options, message in cases:
        with pytest.raises(ModelLoadError, match=message):
            load(family, path, **options)
