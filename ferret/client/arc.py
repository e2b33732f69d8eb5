"""Decoder side of ARC-Encoder compression: put compressed vectors into a Hugging Face decoder's prompt.

A prompt is a list of parts, text and compressed blocks, in reading order. Each block (m vectors and the
`<Cont>` vector from `Compress`) occupies m + 1 sequence positions exactly where it stands, like tokens do,
so the decoder's RoPE positions run on through it. The prompt starts with one BOS (when the tokenizer has
one) and text parts are tokenized without special tokens, which matches the reference recipe (first text
segment with BOS, later ones without) also when the prompt opens with a block.

    from ferret.client.arc import splice_compressed

    parts = ["Document: ", compressed, "\\nQuestion: who wrote it?\\nAnswer:"]
    prompt = splice_compressed(decoder, tokenizer, [parts])
    out = decoder.generate(inputs_embeds=prompt.inputs_embeds, attention_mask=prompt.attention_mask,
                           max_new_tokens=32)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ferret.errors import InvalidArgument


class CompressedBlock(Protocol):
    """What a compressed text carries (e.g. `ferret.encoders.arc.CompressedText` with a decoder set)."""

    vectors: np.ndarray  # [m, decoder hidden size]
    continuation: np.ndarray | None  # [decoder hidden size], goes right after the m vectors


@dataclass
class SplicedPrompts:
    inputs_embeds: torch.Tensor  # [batch, length, hidden], left-padded with zeros
    attention_mask: torch.Tensor  # [batch, length], 0 on padding
    compressed_positions: torch.Tensor  # [batch, length] bool: True where a compressed vector sits


def splice_compressed(
    model: Any, tokenizer: Any, prompts: Sequence[Sequence[str | CompressedBlock]], add_bos: bool = True
) -> SplicedPrompts:
    """`inputs_embeds` and `attention_mask` for `model.generate` from prompts of text and compressed blocks.

    `model` is a Hugging Face decoder (its `get_input_embeddings()` embeds the text parts); `tokenizer` its
    tokenizer. Prompts of different lengths are left-padded, as decoder-only generation needs.
    """
    embedding = model.get_input_embeddings()
    weight = embedding.weight
    hidden = weight.shape[1]
    bos = tokenizer.bos_token_id if add_bos else None
    rows: list[tuple[torch.Tensor, torch.Tensor]] = []
    for p, parts in enumerate(prompts):
        pieces, flags = [], []
        if bos is not None:
            pieces.append(embedding(torch.tensor([bos], device=weight.device)))
            flags.append(torch.zeros(1, dtype=torch.bool))
        for part in parts:
            if isinstance(part, str):
                ids = tokenizer(part, add_special_tokens=False)["input_ids"]
                if not ids:
                    continue
                pieces.append(embedding(torch.tensor(ids, device=weight.device)))
                flags.append(torch.zeros(len(ids), dtype=torch.bool))
                continue
            block = _block_matrix(part, hidden, p)
            pieces.append(torch.from_numpy(block).to(device=weight.device, dtype=weight.dtype))
            flags.append(torch.ones(len(block), dtype=torch.bool))
        if not pieces:
            raise InvalidArgument(f"prompt {p} is empty; give it text or compressed blocks")
        rows.append((torch.cat(pieces), torch.cat(flags)))

    longest = max(len(r[0]) for r in rows)
    embeds = torch.zeros(len(rows), longest, hidden, device=weight.device, dtype=weight.dtype)
    mask = torch.zeros(len(rows), longest, dtype=torch.long, device=weight.device)
    compressed = torch.zeros(len(rows), longest, dtype=torch.bool)
    for i, (row, flag) in enumerate(rows):
        embeds[i, longest - len(row) :] = row
        mask[i, longest - len(row) :] = 1
        compressed[i, longest - len(row) :] = flag
    return SplicedPrompts(inputs_embeds=embeds, attention_mask=mask, compressed_positions=compressed)


def _block_matrix(block: CompressedBlock, hidden: int, prompt: int) -> np.ndarray:
    """[m + 1, hidden]: the compressed vectors, then `<Cont>`."""
    if block.continuation is None:
        raise InvalidArgument(
            f"prompt {prompt}: a compressed block is still in encoder space; ask Compress for a decoder "
            "so it comes back projected with its continuation vector"
        )
    matrix = np.concatenate([np.asarray(block.vectors), np.asarray(block.continuation)[None, :]], axis=0)
    if matrix.ndim != 2 or matrix.shape[1] != hidden:
        raise InvalidArgument(
            f"prompt {prompt}: compressed vectors have size {matrix.shape[-1]} but the decoder's hidden size "
            f"is {hidden}; compress for this decoder"
        )
    return matrix.astype(np.float32, copy=False)
