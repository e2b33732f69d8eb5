"""Randomly initialised Hugging Face model directories of real architectures, for tests and benchmarks.

Weights cannot be downloaded here, so tests and `bench/gpu_check.py` build models from a config with a fixed
seed and `save_pretrained` them next to a real tokenizer: a byte-level BPE trained on a small generated
corpus for decoders, the WordPiece tokenizer shipped with all-MiniLM-L6-v2 for BERT.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>")
_WORDS = (
    "the a protein cell gene cancer study patients results effect treatment model data analysis method "
    "query document retrieval search vector sparse dense token encoder attention layer network python "
    "function returns list string number sort file read write error value index search engine fast small "
    "large water energy climate light time year people city river mountain music history science of in "
    "and to for with on is are was were by from that this which what how why when who"
).split()


def sample_sentences(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14))) for _ in range(count)]


def build_bpe_tokenizer(directory: Path, vocab_size: int = 512) -> int:
    """Train a byte-level BPE tokenizer with <s>, </s>, <pad> and save it; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(sample_sentences(600), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(directory)
    return len(fast)


@dataclass(frozen=True)
class DecoderShape:
    hidden_size: int = 32
    intermediate_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    vocab_size: int | None = None  # None: the tokenizer's size


# Realistic sizes for the GPU check: Qwen2-0.5B (KaLM-V2, Revela-500M) and a 1B Mistral-shaped model.
QWEN2_05B = DecoderShape(896, 4864, 24, 14, 2, 151_936)
MISTRAL_1B = DecoderShape(2048, 5632, 16, 16, 8, 32_000)


def decoder_config(arch: str, shape: DecoderShape, tokenizer_size: int):
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    config_class = {"mistral": MistralConfig, "llama": LlamaConfig, "qwen2": Qwen2Config}[arch]
    return config_class(
        vocab_size=shape.vocab_size or tokenizer_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=2048,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )


def build_decoder(
    directory: Path,
    arch: str,
    tokenizer_dir: Path,
    shape: DecoderShape = DecoderShape(),
    causal_lm: bool = True,
    seed: int = 0,
) -> Path:
    """A random decoder (`*ForCausalLM`, or the bare `*Model` if not causal_lm), tokenizer copied in."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    auto = AutoModelForCausalLM if causal_lm else AutoModel
    model = auto.from_config(decoder_config(arch, shape, len(tokenizer)), dtype=torch.float32)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_bert_mlm(
    directory: Path, tokenizer_dir: str, hidden_size: int = 32, layers: int = 2, seed: int = 0
) -> Path:
    """A random BertForMaskedLM with a real WordPiece tokenizer (e.g. all-MiniLM-L6-v2's)."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=512,
    )
    BertForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_lora_adapter(
    directory: Path, base_dir: Path, causal_lm: bool, seed: int = 1, rank: int = 4
) -> Path:
    """A LoRA adapter on q/v projections with random non-zero A and B, so that merging it changes outputs."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoModelForCausalLM

    auto = AutoModelForCausalLM if causal_lm else AutoModel
    model = auto.from_pretrained(base_dir, dtype=torch.float32)
    torch.manual_seed(seed)
    config = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(model, config).save_pretrained(directory)
    return directory


def copy_without(source: Path, target: Path, pattern: str) -> Path:
    """A copy of a model directory lacking the files that match `pattern` (for missing-file tests)."""
    shutil.copytree(source, target)
    for path in target.glob(pattern):
        path.unlink()
    return target
