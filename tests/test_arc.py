"""ARC-Encoder: a tiny random checkpoint in the released format, checked against a reference written here."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ferret.client.arc import splice_compressed
from ferret.encoders.arc import ArcEncoder, CompressedText, compressed_length, pooling_groups
from ferret.encoders.base import EncodeOptions, EncoderError, EncoderKind, ModelLoadError
from ferret.encoders.registry import ModelConfig, load_model
from ferret.testing.random_arc import (
    CORPUS,
    DECODER_DIM,
    KEPT_LAYERS,
    TINY_CONFIG,
    build_tiny_arc,
    tiny_llama_decoder,
    write_checkpoint,
)

TEXTS = [
    "Pooled queries attend to every unpooled token.",
    "A",
    CORPUS,
    "Vaccines and randomized trials of proteins in cells.",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("arc")
    return path, build_tiny_arc(path)


@pytest.fixture(scope="module")
def encoder(checkpoint) -> ArcEncoder:
    path, _ = checkpoint
    config = ModelConfig(name="arc-tiny", family="arc-encoder", path=str(path),
                         options={"decoders": ["llama", "mistral"], "device": "cpu", "dtype": "fp32"})
    return load_model(config)


# ----- the independent reference: one text at a time, float64, complex-number RoPE, explicit softmax


def _reference_groups(n: int, factor: int) -> list[np.ndarray]:
    """Contiguous groups: exactly `factor` tokens when it divides n, else ceil(n/factor) near-equal groups."""
    return np.array_split(np.arange(n), math.ceil(n / factor))


def _reference_compress(tensors, ids: list[int], factor: int, decoder: int,
                        query_positions: str = "pooled") -> tuple[np.ndarray, np.ndarray]:
    model = TINY_CONFIG["model_args"]
    t = {k: v.double() for k, v in tensors.items()}
    heads, kv_heads, hd, eps = model["n_heads"], model["n_kv_heads"], model["head_dim"], model["norm_eps"]
    # Rotation angles in float32, as the original computes them: at position ~150 a float64 angle differs
    # by ~1e-5 rad, which sharp attention turns into output differences of the size being tested.
    inv_freq = 1.0 / model["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)

    def rms(x, w):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def rope(x, positions):  # x [L, H, hd]; rotate (x[2i], x[2i+1]) as one complex number
        cis = torch.polar(torch.ones(len(positions), hd // 2), torch.outer(positions.float(), inv_freq))
        cis = cis.to(torch.complex128)
        pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], hd // 2, 2))
        return torch.view_as_real(pairs * cis[:, None, :]).reshape(x.shape)

    def attention(layer, q_in, kv_in, q_pos, k_pos):
        p = f"embedder.layers.{layer}.attention."
        q = rope((q_in @ t[p + "wq.weight"].T).view(len(q_in), heads, hd), q_pos)
        k = rope((kv_in @ t[p + "wk.weight"].T).view(len(kv_in), kv_heads, hd), k_pos)
        v = (kv_in @ t[p + "wv.weight"].T).view(len(kv_in), kv_heads, hd)
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
        weights = torch.softmax(torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd), dim=-1)
        return torch.einsum("hqk,khd->qhd", weights, v).reshape(len(q_in), -1) @ t[p + "wo.weight"].T

    def ffn(layer, x):
        p = f"embedder.layers.{layer}."
        x = rms(x, t[p + "ffn_norm.weight"])
        gate = torch.nn.functional.silu(x @ t[p + "feed_forward.w1.weight"].T)
        return (gate * (x @ t[p + "feed_forward.w3.weight"].T)) @ t[p + "feed_forward.w2.weight"].T

    n = len(ids)
    positions = torch.arange(n)
    h = t["embedder.tok_embeddings.weight"][torch.tensor(ids)]
    for layer in range(KEPT_LAYERS - 1):
        normed = rms(h, t[f"embedder.layers.{layer}.attention_norm.weight"])
        h = h + attention(layer, normed, normed, positions, positions)
        h = h + ffn(layer, h)
    last = KEPT_LAYERS - 1
    groups = _reference_groups(n, factor)
    pooled = torch.stack([h[torch.from_numpy(g)].mean(0) for g in groups])
    norm_w = t[f"embedder.layers.{last}.attention_norm.weight"]
    q_pos = torch.arange(len(groups)) if query_positions == "pooled" else torch.tensor([g[0] for g in groups])
    out = pooled + attention(last, rms(pooled, norm_w), rms(h, norm_w), q_pos, positions)
    out = out + ffn(last, out)
    l1, l2 = t[f"bridge_module.{decoder}.layer1.weight"], t[f"bridge_module.{decoder}.layer2.weight"]
    cont = t[f"embedder.cont_tok.{decoder}.weight"][0]
    return (out @ l1.T @ l2.T).numpy(), (cont @ l1.T @ l2.T).numpy()


# ----- tests


def test_number_of_vectors_is_ceil_of_tokens_over_factor():
    assert pooling_groups(20, 8) == [7, 7, 6]  # the research note's worked example
    assert pooling_groups(3, 8) == [3]
    for factor in (1, 2, 4, 8, 16):
        for n in range(1, 80):
            groups = pooling_groups(n, factor)
            assert compressed_length(n, factor) == math.ceil(n / factor) == len(groups)
            assert sum(groups) == n and max(groups) - min(groups) <= 1
            assert groups == sorted(groups, reverse=True)
    with pytest.raises(EncoderError, match="pooling_factor"):
        pooling_groups(10, 0)


def test_loads_through_registry_as_compressor(encoder):
    assert encoder.info.kind is EncoderKind.COMPRESSOR
    assert encoder.info.family == "arc-encoder"
    assert encoder.info.dimension == DECODER_DIM
    assert encoder.pooling_factor == 8
    assert encoder.token_ids(["Vaccines"], EncodeOptions())[0]


@pytest.mark.parametrize("factor", [4, 8])
def test_matches_reference_pooled_attention(encoder, checkpoint, factor):
    _, tensors = checkpoint
    ids = encoder.token_ids(TEXTS, EncodeOptions())
    lengths = [len(i) for i in ids]
    assert any(n % factor for n in lengths if n > factor), lengths  # lengths that are not a multiple
    assert min(lengths) < factor  # and one shorter than a group
    results = encoder.compress(TEXTS, EncodeOptions(), pooling_factor=factor, decoder="mistral")
    for seq, result in zip(ids, results, strict=True):
        vectors, cont = _reference_compress(tensors, seq, factor, decoder=1)
        assert result.m == compressed_length(len(seq), factor) == vectors.shape[0]
        assert result.num_tokens == len(seq) and result.decoder == "mistral"
        assert result.vectors.dtype == np.float32 and result.vectors.shape == (result.m, DECODER_DIM)
        assert np.abs(result.vectors - vectors).max() <= 1e-5
        assert np.abs(result.continuation - cont).max() <= 1e-5
        assert result.continuation_index == result.m


def test_reference_is_sensitive_to_query_positions(checkpoint, encoder):
    # Keys-at-own-positions for the queries too would be a plausible bug; the check above must catch it.
    _, tensors = checkpoint
    seq = encoder.token_ids([CORPUS], EncodeOptions())[0]
    right, _ = _reference_compress(tensors, seq, 8, decoder=0)
    wrong, _ = _reference_compress(tensors, seq, 8, decoder=0, query_positions="first-token")
    assert np.abs(right - wrong).max() > 1e-2


def test_project_later_equals_projecting_now(encoder):
    raw = encoder.compress(TEXTS[:3], EncodeOptions(), project=False)
    direct = encoder.compress(TEXTS[:3], EncodeOptions(), decoder="llama")
    for r, d in zip(raw, direct, strict=True):
        assert r.decoder is None and r.continuation is None
        assert r.vectors.shape[1] == TINY_CONFIG["model_args"]["dim"]
        projected = encoder.project(r, "llama")
        np.testing.assert_allclose(projected.vectors, d.vectors, atol=1e-5)
        np.testing.assert_allclose(projected.continuation, encoder.continuation("llama"), atol=0)


def test_bad_requests_are_invalid_argument(encoder):
    with pytest.raises(EncoderError, match="no decoder 'gpt'"):
        encoder.compress(["x"], EncodeOptions(), decoder="gpt")
    with pytest.raises(EncoderError, match="no tokens"):
        encoder.compress([""], EncodeOptions())
    with pytest.raises(EncoderError, match="pooling_factor"):
        encoder.compress(["text"], EncodeOptions(), pooling_factor=0)


@pytest.mark.parametrize("damage, named", [
    ("drop", "missing tensors embedder.layers.1.feed_forward.w3.weight"),
    ("extra", "unexpected tensors embedder.norm.weight"),
    ("shape", "bridge_module.1.layer2.weight [31, 24] (expected [32, 24])"),
])
def test_bad_checkpoint_fails_at_load_naming_tensors(checkpoint, tmp_path, damage, named):
    path, tensors = checkpoint
    tensors = dict(tensors)
    if damage == "drop":
        del tensors["embedder.layers.1.feed_forward.w3.weight"]
    elif damage == "extra":
        tensors["embedder.norm.weight"] = torch.ones(64)
    else:
        tensors["bridge_module.1.layer2.weight"] = torch.zeros(31, 24)
    write_checkpoint(tmp_path, TINY_CONFIG, tensors)
    config = ModelConfig(name="broken", family="arc-encoder", path=str(tmp_path),
                         options={"tokenizer": str(path), "device": "cpu"})
    with pytest.raises(ModelLoadError, match="broken") as err:
        load_model(config)
    assert named in str(err.value)


def test_unsupported_config_fails_at_load(checkpoint, tmp_path):
    path, tensors = checkpoint
    causal = json.loads(json.dumps(TINY_CONFIG))
    causal["embedder_args"]["causal_embedder"] = True
    write_checkpoint(tmp_path, causal, tensors)
    with pytest.raises(ModelLoadError, match="causal_embedder must be false"):
        load_model(ModelConfig(name="causal", family="arc-encoder", path=str(tmp_path),
                               options={"tokenizer": str(path)}))


def test_generate_with_spliced_compressed_context(encoder, checkpoint):
    path, _ = checkpoint
    decoder, tokenizer = tiny_llama_decoder(path)
    document = CORPUS * 2
    question = "\nQuestion: what does the encoder pool?\nAnswer:"
    factor = 8
    (compressed,) = encoder.compress([document], EncodeOptions(), pooling_factor=factor, decoder="llama")
    prompt = splice_compressed(decoder, tokenizer, [["Document: ", compressed, question]])

    def text_length(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    n, m = compressed.num_tokens, compressed.m
    assert n == text_length(document) and m == math.ceil(n / factor)
    # The document's n token positions became m + 1 (x times fewer, plus <Cont>); text parts are unchanged.
    assert prompt.compressed_positions.sum().item() == m + 1 and (m + 1) * factor * 0.9 < n
    assert prompt.inputs_embeds.shape[1] == 1 + text_length("Document: ") + m + 1 + text_length(question)
    assert torch.equal(prompt.inputs_embeds[0, prompt.compressed_positions[0]][-1],
                       torch.from_numpy(compressed.continuation))  # <Cont> right after the m vectors

    with torch.no_grad():
        out = decoder.generate(inputs_embeds=prompt.inputs_embeds, attention_mask=prompt.attention_mask,
                               max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert out.shape == (1, 4)


def test_splice_left_pads_a_batch_and_rejects_wrong_sizes(encoder):
    from transformers import LlamaConfig, LlamaForCausalLM

    class Chars:  # any tokenizer with the Hugging Face call signature and a BOS id
        bos_token_id = 1

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [3 + ord(c) % 50 for c in text]}

    decoder = LlamaForCausalLM(LlamaConfig(vocab_size=60, hidden_size=DECODER_DIM, intermediate_size=64,
                                           num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2))
    short, long_ = encoder.compress(["Pooled queries.", CORPUS], EncodeOptions(), decoder="llama")
    prompt = splice_compressed(decoder, Chars(), [[short, "Q?"], [long_, "Q?"]])
    width = 1 + long_.m + 1 + 2
    assert prompt.inputs_embeds.shape == (2, width, DECODER_DIM)
    pad = width - (1 + short.m + 1 + 2)
    assert prompt.attention_mask[0].tolist() == [0] * pad + [1] * (width - pad)
    assert prompt.attention_mask[1].all()

    raw = encoder.compress(["Pooled queries."], EncodeOptions(), project=False)[0]
    with pytest.raises(ValueError, match="encoder space"):
        splice_compressed(decoder, Chars(), [[raw]])
    wrong = CompressedText(vectors=np.zeros((2, 16), np.float32), num_tokens=9, pooling_factor=8,
                           decoder="other", continuation=np.zeros(16, np.float32))
    with pytest.raises(ValueError, match="hidden size is 32"):
        splice_compressed(decoder, Chars(), [[wrong]])


def test_token_budget_batches_keep_text_order(encoder):
    whole = encoder.compress(TEXTS, EncodeOptions(), decoder="llama")
    budget = encoder.max_batch_tokens
    encoder.max_batch_tokens = 40  # several forward passes, each sorted by length
    try:
        split = encoder.compress(TEXTS, EncodeOptions(), decoder="llama")
    finally:
        encoder.max_batch_tokens = budget
    for a, b in zip(whole, split, strict=True):
        assert a.num_tokens == b.num_tokens
        np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)


def test_decoder_count_from_names_when_config_lacks_it(checkpoint, tmp_path):
    path, tensors = checkpoint
    config = {k: v for k, v in TINY_CONFIG.items() if k != "empty_init"}
    write_checkpoint(tmp_path, config, tensors)
    options = {"tokenizer": str(path), "device": "cpu"}
    with pytest.raises(ModelLoadError, match="unexpected tensors bridge_module.1.layer1.weight"):
        load_model(ModelConfig(name="one", family="arc-encoder", path=str(tmp_path), options=options))
    named = load_model(ModelConfig(name="two", family="arc-encoder", path=str(tmp_path),
                                   options={**options, "decoders": ["llama", "mistral"]}))
    assert named.info.extra["decoders"] == "llama,mistral"
