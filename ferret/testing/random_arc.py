"""A tiny ARC-Encoder checkpoint in the released format with random weights, and a decoder to splice into.

Real ARC weights cannot be downloaded here, so tests build one: the released `config.json` layout scaled down
(64-dim encoder, 3 kept layers, two decoders of hidden size 32), tensors under the Hub names with Llama-like
initial scales, and a byte-level BPE tokenizer trained on `CORPUS`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

TINY_CONFIG = {
    "model_args": {
        "dim": 64, "n_layers": 5, "head_dim": 16, "hidden_dim": 96, "n_heads": 4, "n_kv_heads": 2,
        "norm_eps": 1e-5, "vocab_size": 400, "rope_theta": 10000.0, "max_batch_size": 1,
    },
    "embedder_args": {
        "causal_embedder": False, "compress_rates": [-8], "n_truncated_layers": 2,
        "pooling_module": {"pool_type": "mean_pooled_queries", "where": "before"},
        "trained_layers": 3, "train_embedding_mtx": True, "rec_tok": True, "cont_tok": True,
    },
    "bridge_args": {"bridge_type": "multi_module", "in_dim": 64, "hidden_dim": 24, "out_dim": 32},
    "empty_init": 2,
}
KEPT_LAYERS = 3
DECODER_DIM = 32
CORPUS = (
    "Compressed context lets a decoder read long retrieved passages for a fraction of the prefill cost. "
    "The encoder reads every token of a passage without a causal mask and pools contiguous groups of tokens "
    "into fewer vectors, which a small projector maps into the hidden size of the decoder model. "
    "Scientific claims about proteins, cells, vaccines and randomized trials fill the corpus of SciFact. "
)
# Documents of the compressed-collection tests: "scifact" is the only one about influenza, "long" (three
# times CORPUS) the best BM25 match for the encoder/decoder/projector vocabulary.
COMPRESSED_DOCUMENTS = {
    "pool": "The encoder pools contiguous groups of tokens into fewer vectors for the decoder.",
    "scifact": "Randomized trials of influenza vaccination in elderly patients reduce hospital admissions.",
    "long": CORPUS * 3,
    "short": "Vaccines.",
}


def train_tokenizer(directory: Path) -> None:
    """A byte-level BPE `tokenizer.json` with <unk>, <s>, </s> (ids 0, 1, 2), trained on CORPUS."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=380, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator([CORPUS] * 4, trainer)
    tokenizer.save(str(directory / "tokenizer.json"))


def random_checkpoint(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Hub tensor names with random weights (Llama-like embedding scale, 1/sqrt(fan-in) linear maps)."""
    gen = torch.Generator().manual_seed(seed)
    model, bridge = config["model_args"], config["bridge_args"]
    dim, hd = model["dim"], model["head_dim"]

    def linear(out_dim: int, in_dim: int) -> torch.Tensor:
        return torch.randn(out_dim, in_dim, generator=gen) / math.sqrt(in_dim)

    tensors = {"embedder.tok_embeddings.weight": 0.02 * torch.randn(model["vocab_size"], dim, generator=gen)}
    for i in range(model["n_layers"] - config["embedder_args"]["n_truncated_layers"]):
        p = f"embedder.layers.{i}."
        tensors[p + "attention.wq.weight"] = linear(model["n_heads"] * hd, dim)
        tensors[p + "attention.wk.weight"] = linear(model["n_kv_heads"] * hd, dim)
        tensors[p + "attention.wv.weight"] = linear(model["n_kv_heads"] * hd, dim)
        tensors[p + "attention.wo.weight"] = linear(dim, model["n_heads"] * hd)
        tensors[p + "feed_forward.w1.weight"] = linear(model["hidden_dim"], dim)
        tensors[p + "feed_forward.w2.weight"] = linear(dim, model["hidden_dim"])
        tensors[p + "feed_forward.w3.weight"] = linear(model["hidden_dim"], dim)
        tensors[p + "attention_norm.weight"] = 1 + 0.1 * torch.randn(dim, generator=gen)
        tensors[p + "ffn_norm.weight"] = 1 + 0.1 * torch.randn(dim, generator=gen)
    for j in range(config["empty_init"]):
        tensors[f"embedder.cont_tok.{j}.weight"] = torch.randn(1, dim, generator=gen)
        tensors[f"embedder.rec_tok.{j}.weight"] = torch.randn(1, dim, generator=gen)
        tensors[f"bridge_module.{j}.layer1.weight"] = linear(bridge["hidden_dim"], dim)
        tensors[f"bridge_module.{j}.layer2.weight"] = linear(bridge["out_dim"], bridge["hidden_dim"])
    return tensors


def write_checkpoint(directory: Path, config: dict, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(directory / "model.safetensors"))


def build_tiny_arc(directory: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """Write a complete TINY_CONFIG checkpoint with its tokenizer into `directory`; returns its tensors."""
    tensors = random_checkpoint(TINY_CONFIG, seed)
    write_checkpoint(directory, TINY_CONFIG, tensors)
    train_tokenizer(directory)
    return tensors


def tiny_llama_decoder(tokenizer_dir: Path, seed: int = 0):
    """(random LlamaForCausalLM of hidden size DECODER_DIM, its tokenizer) over the tiny ARC tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_dir / "tokenizer.json"), bos_token="<s>",
                                        eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(seed)
    decoder = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=DECODER_DIM, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )).eval()
    return decoder, tokenizer
