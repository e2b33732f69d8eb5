"""ARC step of `bench/gpu_check.py`: compression throughput of a full-size ARC-Encoder with random weights.

Full size is the released shape (Llama-3.2-3B truncated to 26 blocks, pooling factor 8, one 3072->2048->4096
projector). Target from the research note: >= 50k tokens/s compressed on one H100 in bf16. The peer on the
same tokens is a plain Hugging Face `LlamaModel` forward of the same 26 blocks (what an ARC encoder costs
without any pooling logic), so the ratio shows what Ferret's pooled last block and padding handling cost.
On CPU the tiny shape runs instead and the output says so: those numbers are no throughput claim.

    PYTHONPATH=. python bench/gpu_check_arc.py   # cuda/bf16/full with a GPU, else cpu/fp32/tiny
"""

from __future__ import annotations

import dataclasses
import time

import torch

from ferret.encoders.arc import ArcArchitecture, ArcEncoderModel

FULL = ArcArchitecture(
    dim=3072,
    n_layers=26,
    head_dim=128,
    hidden_dim=8192,
    n_heads=24,
    n_kv_heads=8,
    norm_eps=1e-5,
    vocab_size=128_256,
    rope_theta=500_000.0,
    pooling_factor=8,
    n_decoders=1,
    multi_decoder_layout=False,
    projector_hidden_dim=2048,
    decoder_dim=4096,
    has_rec_tok=True,
)
TINY = dataclasses.replace(
    FULL,
    dim=256,
    n_layers=4,
    head_dim=64,
    hidden_dim=512,
    n_heads=4,
    n_kv_heads=2,
    vocab_size=32_000,
    projector_hidden_dim=128,
    decoder_dim=512,
)
TARGET_TOKENS_PER_S = 50_000  # per H100, bf16 (research note, dense_and_arc.md 3.5 / item 12)


def _timed(run, device: str, iters: int) -> float:
    """Seconds per call after two warm-up calls."""
    for _ in range(2):
        run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def _ferret_seconds(
    arch: ArcArchitecture, device: str, dtype: torch.dtype, token_ids: list[list[int]], iters: int
) -> float:
    """Seconds to compress the batch: encoder (pooled last block included) and projector."""
    with torch.device(device):
        model = ArcEncoderModel(arch).to(dtype).eval()

    def compress() -> None:
        with torch.inference_mode():
            model.projectors[0](torch.cat(model(token_ids, arch.pooling_factor)))

    return _timed(compress, device, iters)


def _peer_seconds(
    arch: ArcArchitecture, device: str, dtype: torch.dtype, token_ids: list[list[int]], iters: int
) -> float:
    """Seconds for a Hugging Face `LlamaModel` of the same blocks to run over the same tokens."""
    from transformers import LlamaConfig, LlamaModel

    config = LlamaConfig(
        vocab_size=arch.vocab_size,
        hidden_size=arch.dim,
        intermediate_size=arch.hidden_dim,
        num_hidden_layers=arch.n_layers,
        num_attention_heads=arch.n_heads,
        num_key_value_heads=arch.n_kv_heads,
        head_dim=arch.head_dim,
        rms_norm_eps=arch.norm_eps,
        rope_theta=arch.rope_theta,
        attn_implementation="sdpa",
    )
    with torch.device(device):
        peer = LlamaModel(config).to(dtype).eval()
    ids = torch.tensor(token_ids, device=device)

    def forward() -> None:
        with torch.inference_mode():
            peer(input_ids=ids)

    return _timed(forward, device, iters)


def arc_step(
    device: str, dtype: torch.dtype, size: str, batch: int = 16, seq_len: int = 1024, iters: int = 5
) -> dict[str, object]:
    """Compress `batch` random texts of `seq_len` tokens (encoder + projector); tokens/s beside the peer."""
    arch = FULL if size == "full" else TINY
    torch.manual_seed(0)
    token_ids = torch.randint(0, arch.vocab_size, (batch, seq_len)).tolist()
    tokens = batch * seq_len
    # One model at a time, each freed when its function returns, so the full size fits next to its peer.
    ferret = tokens / _ferret_seconds(arch, device, dtype, token_ids, iters)
    peer = tokens / _peer_seconds(arch, device, dtype, token_ids, iters)
    return {
        "step": "arc",
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "size": size,
        "batch": f"{batch}x{seq_len}",
        "tokens_per_s": ferret,
        "peer_tokens_per_s": peer,
        "target_tokens_per_s": TARGET_TOKENS_PER_S if size == "full" else None,
    }


def print_row(row: dict[str, object]) -> None:
    ratio = row["tokens_per_s"] / row["peer_tokens_per_s"]
    target = row["target_tokens_per_s"]
    verdict = (
        f"target {target:,} tok/s: {'met' if row['tokens_per_s'] >= target else 'MISSED'}"
        if target
        else "tiny shape on CPU: checks that it runs, not a throughput claim"
    )
    print(
        f"{'step':6} {'device':8} {'dtype':9} {'size':5} {'batch':9} {'ferret tok/s':>13} "
        f"{'HF Llama tok/s':>15} {'ratio':>6}  verdict"
    )
    print(
        f"{row['step']:6} {row['device']:8} {row['dtype']:9} {row['size']:5} {row['batch']:9} "
        f"{row['tokens_per_s']:13,.0f} {row['peer_tokens_per_s']:15,.0f} {ratio:6.2f}  {verdict}"
    )


if __name__ == "__main__":
    if torch.cuda.is_available():
        print_row(arc_step("cuda", torch.bfloat16, "full"))
    else:
        print_row(arc_step("cpu", torch.float32, "tiny", batch=4, seq_len=256, iters=2))
