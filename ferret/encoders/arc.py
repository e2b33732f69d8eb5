"""ARC-Encoder context compressor (Kyutai, arXiv 2510.20535): a text becomes ~x times fewer decoder vectors.

Architecture (written from the paper and `/work/shared/research/dense_and_arc.md` section 3):

* A Llama-3.2 transformer truncated to its first `n_layers - n_truncated_layers` blocks, run **without** a
  causal mask: every token attends to every token of its own text. RoPE uses Meta's interleaved-pair
  convention and no Llama-3 frequency scaling. There is no final norm and no output head.
* The last block pools: each text's n tokens are cut into m contiguous groups (`pooling_groups`), the residual
  stream entering that block is averaged per group, and the m averages are the attention *queries* over all n
  unpooled tokens. Queries take RoPE positions 0..m-1, keys keep their own positions 0..n-1.
* A learned continuation vector `<Cont>` per decoder is appended after the m vectors (in encoder space).
* A per-decoder projector of two bias-free linear layers with no activation in between maps the encoder
  dimension to the decoder's hidden size. Being linear, it can be applied later: collections keep the
  encoder-space vectors (`compress(..., project=False)`) and call `project` for the decoder a query names.

Number of vectors: for a text of n >= 1 tokens and pooling factor x, m = ceil(n / x) (`compressed_length`).
The released checkpoints were trained at x = 8; x is a load-time option and can be overridden per call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferret.encoders.base import (
    CompressedText,
    EncodeOptions,
    Encoder,
    EncoderError,
    EncoderKind,
    ModelInfo,
    ModelLoadError,
    Side,
)

# `max_len_4_oom` of the reference pipeline: longer texts are truncated (or rejected when truncate=False).
MAX_TOKENS = 32_768
CHECKPOINT_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def compressed_length(num_tokens: int, pooling_factor: int) -> int:
    """m, the number of vectors a text of `num_tokens` tokens compresses to: ceil(n / x), and 1 when n < x."""
    return len(pooling_groups(num_tokens, pooling_factor))


def pooling_groups(num_tokens: int, pooling_factor: int) -> list[int]:
    """Sizes of the contiguous token groups averaged into one vector each, in text order.

    If x divides n the groups are all x tokens. Otherwise there are floor(n/x)+1 groups of near-equal size
    (differing by at most one, the larger ones first): n=20, x=8 gives [7, 7, 6]. This is the grouping the
    released weights were trained with.
    """
    if num_tokens < 1:
        raise EncoderError("an ARC-Encoder input needs at least one token; empty texts cannot be compressed")
    if pooling_factor < 1:
        raise EncoderError(
            f"pooling_factor={pooling_factor} is invalid; use a positive integer such as 4 or 8"
        )
    if num_tokens % pooling_factor == 0:
        return [pooling_factor] * (num_tokens // pooling_factor)
    groups = num_tokens // pooling_factor + 1
    base, larger = divmod(num_tokens, groups)
    return [base + 1] * larger + [base] * (groups - larger)


@dataclass(frozen=True)
class ArcArchitecture:
    """The shape of one ARC-Encoder, read from the released `config.json` (or built directly)."""

    dim: int
    n_layers: int  # encoder blocks actually kept (backbone layers minus the truncated ones)
    head_dim: int
    hidden_dim: int
    n_heads: int
    n_kv_heads: int
    norm_eps: float
    vocab_size: int
    rope_theta: float
    pooling_factor: int
    n_decoders: int
    multi_decoder_layout: bool  # projectors stored as `bridge_module.{j}.*` rather than `bridge_module.*`
    projector_hidden_dim: int
    decoder_dim: int
    has_rec_tok: bool

    @classmethod
    def from_released_config(
        cls, config: Mapping[str, Any], n_decoders: int | None = None
    ) -> ArcArchitecture:
        """Parse the config published with the checkpoints (`PyTorchModelHubMixin` init kwargs).

        Keys used: `model_args` (the Llama-3.2 backbone), `embedder_args` (truncation, pooling, special
        tokens), `bridge_args` (projector shape and `bridge_type` "mlp" or "multi_module"), `empty_init`
        (number of decoders the encoder was built for; `n_decoders` stands in when a config lacks it).
        Variants not implemented here are refused by name.
        """
        try:
            model, embedder, bridge = config["model_args"], config["embedder_args"], config["bridge_args"]
        except KeyError as exc:
            raise ModelLoadError(
                f"ARC config lacks the {exc.args[0]!r} section; expected model_args, "
                "embedder_args and bridge_args as in the released config.json"
            ) from None
        _require(embedder.get("causal_embedder", False) is False, "causal_embedder must be false")
        pooling = embedder.get("pooling_module", {})
        _require(
            pooling.get("pool_type") == "mean_pooled_queries" and pooling.get("where", "before") == "before",
            f"pooling_module must be mean_pooled_queries/before, got {pooling}",
        )
        rates = embedder.get("compress_rates", [])
        _require(
            len(rates) == 1 and int(rates[0]) < -1,
            f"compress_rates must be one negative pooling factor such as [-8], got {rates}",
        )
        _require(int(embedder.get("memory_tokens", 0)) == 0, "memory_tokens are not supported")
        _require(not model.get("non_parametric_norm", False), "non_parametric_norm is not supported")
        _require(embedder.get("cont_tok", True) is True, "the released format has cont_tok: true")
        bridge_type = bridge.get("bridge_type")
        _require(
            bridge_type in ("mlp", "multi_module"),
            f"bridge_type must be mlp or multi_module, got {bridge_type}",
        )
        n_decoders = int(config.get("empty_init", n_decoders or 1))
        _require(n_decoders >= 1, "empty_init (number of decoders) must be >= 1")
        _require(bridge_type == "multi_module" or n_decoders == 1, "bridge_type mlp has exactly one decoder")
        _require(int(bridge["in_dim"]) == int(model["dim"]), "bridge_args.in_dim must equal model_args.dim")
        return cls(
            dim=int(model["dim"]),
            n_layers=int(model["n_layers"]) - int(embedder.get("n_truncated_layers", 0)),
            head_dim=int(model["head_dim"]),
            hidden_dim=int(model["hidden_dim"]),
            n_heads=int(model["n_heads"]),
            n_kv_heads=int(model["n_kv_heads"]),
            norm_eps=float(model["norm_eps"]),
            vocab_size=int(model["vocab_size"]),
            rope_theta=float(model.get("rope_theta") or 1_000_000.0),
            pooling_factor=-int(rates[0]),
            n_decoders=n_decoders,
            multi_decoder_layout=bridge_type == "multi_module",
            projector_hidden_dim=int(bridge.get("hidden_dim") or bridge["out_dim"]),
            decoder_dim=int(bridge["out_dim"]),
            has_rec_tok=bool(embedder.get("rec_tok", False)),
        )


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise ModelLoadError(f"unsupported ARC-Encoder config: {what}")


def checkpoint_tensor_map(arch: ArcArchitecture) -> dict[str, str | None]:
    """Every tensor name of the released `model.safetensors` -> `ArcEncoderModel` parameter (None: unused).

    `<Rec>` vectors belong to the pretraining reconstruction task only, so they are expected but not loaded.
    """
    names: dict[str, str | None] = {"embedder.tok_embeddings.weight": "token_embedding.weight"}
    per_block = {
        "attention.wq": "attention.query",
        "attention.wk": "attention.key",
        "attention.wv": "attention.value",
        "attention.wo": "attention.output",
        "feed_forward.w1": "feed_forward.gate",
        "feed_forward.w2": "feed_forward.down",
        "feed_forward.w3": "feed_forward.up",
        "attention_norm": "attention_norm",
        "ffn_norm": "ffn_norm",
    }
    for i in range(arch.n_layers):
        for theirs, ours in per_block.items():
            names[f"embedder.layers.{i}.{theirs}.weight"] = f"blocks.{i}.{ours}.weight"
    for j in range(arch.n_decoders):
        names[f"embedder.cont_tok.{j}.weight"] = f"continuation.{j}"
        if arch.has_rec_tok:
            names[f"embedder.rec_tok.{j}.weight"] = None
        prefix = f"bridge_module.{j}." if arch.multi_decoder_layout else "bridge_module."
        for layer in ("layer1", "layer2"):
            names[f"{prefix}{layer}.weight"] = f"projectors.{j}.{layer}.weight"
    return names


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [len(positions), head_dim/2] in float32 for plain (unscaled) RoPE."""
    inv_freq = 1.0 / theta ** (
        torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim
    )
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs (x[2i], x[2i+1]) — Meta's layout, not Hugging Face's rotate-half — in float32."""
    pairs = x.float().unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2).type_as(x)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).type_as(x) * self.weight


class Attention(nn.Module):
    def __init__(self, arch: ArcArchitecture):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = arch.n_heads, arch.n_kv_heads, arch.head_dim
        self.query = nn.Linear(arch.dim, arch.n_heads * arch.head_dim, bias=False)
        self.key = nn.Linear(arch.dim, arch.n_kv_heads * arch.head_dim, bias=False)
        self.value = nn.Linear(arch.dim, arch.n_kv_heads * arch.head_dim, bias=False)
        self.output = nn.Linear(arch.n_heads * arch.head_dim, arch.dim, bias=False)

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        rope_q: tuple[torch.Tensor, torch.Tensor],
        rope_k: tuple[torch.Tensor, torch.Tensor],
        key_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """queries [B, Lq, dim] attend non-causally to keys [B, Lk, dim] where key_mask (None: all keys)."""
        batch, lq, _ = queries.shape
        lk = keys.shape[1]
        q = self.query(queries).view(batch, lq, self.n_heads, self.head_dim)
        k = self.key(keys).view(batch, lk, self.n_kv_heads, self.head_dim)
        v = self.value(keys).view(batch, lk, self.n_kv_heads, self.head_dim)
        q = apply_rope(q, rope_q[0][:, None, :], rope_q[1][:, None, :])
        k = apply_rope(k, rope_k[0][:, None, :], rope_k[1][:, None, :])
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=key_mask, enable_gqa=True
        )
        return self.output(out.transpose(1, 2).reshape(batch, lq, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.gate = nn.Linear(dim, hidden_dim, bias=False)
        self.up = nn.Linear(dim, hidden_dim, bias=False)
        self.down = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    """Pre-norm Llama block whose queries may come from another sequence than its keys (the pooling block)."""

    def __init__(self, arch: ArcArchitecture):
        super().__init__()
        self.attention_norm = RMSNorm(arch.dim, arch.norm_eps)
        self.attention = Attention(arch)
        self.ffn_norm = RMSNorm(arch.dim, arch.norm_eps)
        self.feed_forward = FeedForward(arch.dim, arch.hidden_dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        rope_q: tuple[torch.Tensor, torch.Tensor],
        rope_k: tuple[torch.Tensor, torch.Tensor],
        key_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        normed_x = self.attention_norm(x)
        normed_context = normed_x if context is x else self.attention_norm(context)
        h = x + self.attention(normed_x, normed_context, rope_q, rope_k, key_mask)
        return h + self.feed_forward(self.ffn_norm(h))


class Projector(nn.Module):
    """Encoder space -> one decoder's hidden size: two bias-free linear maps, no activation between them."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.layer1 = nn.Linear(in_dim, hidden_dim, bias=False)
        self.layer2 = nn.Linear(hidden_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(self.layer1(x))


class ArcEncoderModel(nn.Module):
    def __init__(self, arch: ArcArchitecture):
        super().__init__()
        self.arch = arch
        self.token_embedding = nn.Embedding(arch.vocab_size, arch.dim)
        self.blocks = nn.ModuleList(Block(arch) for _ in range(arch.n_layers))
        self.continuation = nn.ParameterList(
            nn.Parameter(torch.zeros(1, arch.dim)) for _ in range(arch.n_decoders)
        )
        self.projectors = nn.ModuleList(
            Projector(arch.dim, arch.projector_hidden_dim, arch.decoder_dim) for _ in range(arch.n_decoders)
        )

    def forward(self, token_ids: Sequence[Sequence[int]], pooling_factor: int) -> list[torch.Tensor]:
        """Encoder-space vectors [m_i, dim] per token sequence (one padded batch, padding never attended)."""
        device = self.token_embedding.weight.device
        lengths = [len(ids) for ids in token_ids]
        groups = [pooling_groups(n, pooling_factor) for n in lengths]
        batch, longest, most_groups = len(lengths), max(lengths), max(len(g) for g in groups)
        ids = torch.zeros(batch, longest, dtype=torch.long)
        for row, seq in enumerate(token_ids):
            ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        ids = ids.to(device)
        key_mask = None  # equal lengths need no mask, which lets SDPA pick its fastest (flash) kernel
        if min(lengths) < longest:
            valid = (
                torch.arange(longest, device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]
            )
            key_mask = valid[:, None, None, :]
        rope_tokens = rope_angles(
            torch.arange(longest, device=device), self.arch.head_dim, self.arch.rope_theta
        )
        # Pooled queries sit at positions 0..m-1 of a pooled sequence while keys keep positions 0..n-1.
        rope_pooled = rope_angles(
            torch.arange(most_groups, device=device), self.arch.head_dim, self.arch.rope_theta
        )

        h = self.token_embedding(ids)
        for block in self.blocks[:-1]:
            h = block(h, h, rope_tokens, rope_tokens, key_mask)
        pooled = _group_means(groups, longest, most_groups, h.dtype, device) @ h
        out = self.blocks[-1](pooled, h, rope_pooled, rope_tokens, key_mask)
        return [out[row, : len(g)] for row, g in enumerate(groups)]


def _group_means(
    groups: list[list[int]], longest: int, most_groups: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """[B, most_groups, longest] averaging matrix: row g of sequence b holds 1/size over group g's tokens."""
    weights = torch.zeros(len(groups), most_groups, longest, dtype=torch.float32)
    for row, sizes in enumerate(groups):
        size_of_group = torch.tensor(sizes)
        group_of_token = torch.repeat_interleave(torch.arange(len(sizes)), size_of_group)
        tokens = torch.arange(len(group_of_token))
        weights[row, group_of_token, tokens] = 1.0 / size_of_group[group_of_token].float()
    return weights.to(device=device, dtype=dtype)


def load_checkpoint(model: ArcEncoderModel, checkpoint: Path) -> None:
    """Fill `model` from a released `model.safetensors`; a mismatch is a ModelLoadError naming the tensors."""
    from safetensors import safe_open

    expected = checkpoint_tensor_map(model.arch)
    params = dict(model.named_parameters())
    with safe_open(str(checkpoint), framework="pt") as reader:
        present = set(reader.keys())
        missing = sorted(set(expected) - present)
        unexpected = sorted(present - set(expected))
        if missing or unexpected:
            raise ModelLoadError(
                f"ARC checkpoint {checkpoint} does not match its config: "
                f"missing tensors {_listing(missing)}; unexpected tensors {_listing(unexpected)}"
            )
        wrong_shapes = []
        for name, target in expected.items():
            if target is None:
                continue
            shape = tuple(reader.get_slice(name).get_shape())
            if shape != tuple(params[target].shape):
                wrong_shapes.append(f"{name} {list(shape)} (expected {list(params[target].shape)})")
                continue
            with torch.no_grad():  # one tensor at a time: peak memory stays near the model's own size
                params[target].copy_(reader.get_tensor(name))
        if wrong_shapes:
            raise ModelLoadError(
                f"ARC checkpoint {checkpoint} has tensors of the wrong shape: {_listing(wrong_shapes)}"
            )


def _listing(names: list[str], limit: int = 12) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return f"{shown} (+{len(names) - limit} more)" if len(names) > limit else shown


class ArcEncoder(Encoder):
    """An ARC-Encoder checkpoint served as a COMPRESSOR.

    Load options: `device` ("cpu"/"cuda", default cuda when available), `dtype` (fp32, bf16, fp16; default
    fp32 on CPU and bf16 on GPU), `pooling_factor` (default: the checkpoint's), `decoders` (names of the
    checkpoint's decoders in projector order; default "0", "1", ...: the released multi checkpoint has
    Llama-3.1-8B at 0 and Mistral-7B at 1), `tokenizer` (directory or tokenizer.json of the Llama-3
    tokenizer; default: the checkpoint directory), `max_batch_tokens` (padded tokens per forward pass,
    default 16384).
    """

    def __init__(self, name: str, path: str, options: Mapping[str, Any]):
        root = Path(path)
        try:
            config = json.loads((root / CONFIG_FILE).read_text())
        except FileNotFoundError:
            raise ModelLoadError(f"model {name!r}: {root / CONFIG_FILE} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"model {name!r}: {root / CONFIG_FILE} is not valid JSON: {exc}") from None
        named = options.get("decoders")
        arch = ArcArchitecture.from_released_config(config, len(named) if named else None)
        device = options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype_name = options.get("dtype") or ("fp32" if device == "cpu" else "bf16")
        if dtype_name not in DTYPES:
            raise ModelLoadError(
                f"model {name!r}: dtype {dtype_name!r} is unknown; use one of {', '.join(DTYPES)}"
            )
        self.decoders = [str(d) for d in options.get("decoders", [str(j) for j in range(arch.n_decoders)])]
        if len(self.decoders) != arch.n_decoders or len(set(self.decoders)) != len(self.decoders):
            raise ModelLoadError(
                f"model {name!r}: `decoders` must name the checkpoint's {arch.n_decoders} "
                f"decoder(s) uniquely, got {self.decoders}"
            )
        self.pooling_factor = int(options.get("pooling_factor", arch.pooling_factor))
        if self.pooling_factor < 1:
            raise ModelLoadError(f"model {name!r}: pooling_factor must be >= 1, got {self.pooling_factor}")
        self.max_batch_tokens = int(options.get("max_batch_tokens", 16_384))
        self.tokenizer = _load_tokenizer(Path(options.get("tokenizer") or root), arch.vocab_size)

        self.model = ArcEncoderModel(arch)
        load_checkpoint(self.model, root / CHECKPOINT_FILE)
        self.model.to(device=device, dtype=DTYPES[dtype_name]).eval()
        with torch.inference_mode():  # <Cont> through each projector is a per-decoder constant
            self._continuations = [
                self.model.projectors[j](self.model.continuation[j])[0].float().cpu().numpy()
                for j in range(arch.n_decoders)
            ]
        self.info = ModelInfo(
            name=name,
            family="arc-encoder",
            kind=EncoderKind.COMPRESSOR,
            max_length=MAX_TOKENS,
            dimension=arch.decoder_dim,
            sides=(Side.DOCUMENT,),  # it compresses context passages; there is no query side
            extra={
                "pooling_factor": str(self.pooling_factor),
                "decoders": ",".join(self.decoders),
                "encoder_dimension": str(arch.dim),
                "dtype": dtype_name,
            },
        )

    def token_ids(self, texts: list[str], options: EncodeOptions) -> list[list[int]]:
        # The reference pipeline tokenizes without BOS/EOS.
        return [enc.ids for enc in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def decoder_index(self, decoder: str | None) -> int:
        if decoder is None:
            return 0
        try:
            return self.decoders.index(decoder)
        except ValueError:
            raise EncoderError(
                f"model {self.info.name!r} has no decoder {decoder!r}; "
                f"its decoders are: {', '.join(self.decoders)}"
            ) from None

    def compress(
        self,
        texts: list[str],
        options: EncodeOptions,
        pooling_factor: int | None = None,
        decoder: str | None = None,
        project: bool = True,
    ) -> list[CompressedText]:
        """Compress each text into m = ceil(n / pooling_factor) vectors (see `compressed_length`).

        project=True: vectors in the hidden size of `decoder` (default: the first) plus its `<Cont>` vector.
        project=False: encoder-space vectors before the projector, for storage; `project` maps them later.
        """
        self.check_options(options)
        factor = self.pooling_factor if pooling_factor is None else pooling_factor
        index = self.decoder_index(decoder)
        ids = self.token_ids(texts, options)
        for i, seq in enumerate(ids):
            if not seq:
                raise EncoderError(f"text {i} has no tokens; an empty text cannot be compressed")
            if len(seq) > MAX_TOKENS:
                if not options.truncate:
                    raise EncoderError(
                        f"text {i} has {len(seq)} tokens, more than the {MAX_TOKENS} this model "
                        "compresses; shorten it or set truncate=true"
                    )
                ids[i] = seq[:MAX_TOKENS]
        pooling_groups(1, factor)  # validates the factor before any work
        encoded = self._encode(ids, factor)
        results = []
        for seq, vectors in zip(ids, encoded, strict=True):
            result = CompressedText(
                vectors=vectors, num_tokens=len(seq), pooling_factor=factor, decoder=None, continuation=None
            )
            results.append(self.project(result, self.decoders[index]) if project else result)
        return results

    def project(self, compressed: CompressedText, decoder: str | None = None) -> CompressedText:
        """Map encoder-space vectors (from `compress(..., project=False)`) into `decoder`'s hidden size."""
        if compressed.decoder is not None:
            raise EncoderError(f"these vectors are already projected for decoder {compressed.decoder!r}")
        index = self.decoder_index(decoder)
        projector = self.model.projectors[index]
        weight = projector.layer1.weight
        with torch.inference_mode():
            vectors = projector(
                torch.from_numpy(compressed.vectors).to(device=weight.device, dtype=weight.dtype)
            )
        return CompressedText(
            vectors=vectors.float().cpu().numpy(),
            num_tokens=compressed.num_tokens,
            pooling_factor=compressed.pooling_factor,
            decoder=self.decoders[index],
            continuation=self.continuation(decoder),
        )

    def continuation(self, decoder: str | None = None) -> np.ndarray:
        """`<Cont>` of `decoder`, already projected into its hidden size (float32 [decoder_dim])."""
        return self._continuations[self.decoder_index(decoder)].copy()

    def _encode(self, ids: list[list[int]], factor: int) -> list[np.ndarray]:
        """Encoder-space vectors per text, batched by length so that padding stays small."""
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[np.ndarray | None] = [None] * len(ids)
        start = 0
        while start < len(order):
            # Sorted ascending, so the batch's padded size is its last member's length times its size.
            stop = start + 1
            while stop < len(order) and len(ids[order[stop]]) * (stop + 1 - start) <= self.max_batch_tokens:
                stop += 1
            batch = order[start:stop]
            with torch.inference_mode():
                vectors = self.model([ids[i] for i in batch], factor)
            for i, v in zip(batch, vectors, strict=True):
                out[i] = v.float().cpu().numpy()
            start = stop
        return out  # type: ignore[return-value]


def _load_tokenizer(path: Path, vocab_size: int):
    from tokenizers import Tokenizer

    file = path / TOKENIZER_FILE if path.is_dir() else path
    if not file.exists():
        raise ModelLoadError(
            f"no tokenizer at {file}: the ARC-Encoder needs the Llama-3 tokenizer's tokenizer.json "
            "(set the `tokenizer` option to its directory)"
        )
    tokenizer = Tokenizer.from_file(str(file))
    if tokenizer.get_vocab_size(with_added_tokens=True) > vocab_size:
        raise ModelLoadError(
            f"tokenizer {file} has {tokenizer.get_vocab_size()} tokens, more than the "
            f"encoder's embedding table of {vocab_size}"
        )
    return tokenizer


def load(name: str, path: str, options: Mapping[str, Any]) -> Encoder:
    return ArcEncoder(name, path, options)
