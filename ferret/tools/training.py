"""What the trained second stages share: usage data as tensors, a small BCE training loop, and saving a
model together with the catalogue fingerprint it was trained on."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ferret.errors import FailedPrecondition
from ferret.tools.signals import ToolSignals


@dataclass
class UsageData:
    vectors: np.ndarray  # [records, dim] query embeddings
    labels: np.ndarray  # [records, tools] multi-hot over signals.ids
    gold_rows: list[list[int]]


def usage_data(signals: ToolSignals) -> UsageData:
    """Recorded usage of the live tools, embedded by the signals' model."""
    row_of = {tool_id: row for row, tool_id in enumerate(signals.ids)}
    records = list(signals.catalogue.usage(signals.model))
    if not records:
        raise FailedPrecondition("no usage is recorded for the current tools; RecordUsage first, then train")
    labels = np.zeros((len(records), len(signals.ids)), np.float32)
    gold_rows = []
    for i, record in enumerate(records):
        rows = [row_of[t] for t in record.tool_ids]
        labels[i, rows] = 1.0
        gold_rows.append(rows)
    return UsageData(np.stack([r.vector for r in records]), labels, gold_rows)


def train_bce(
    model: torch.nn.Module,
    batches: Callable[[np.random.Generator], Iterable[tuple]],
    epochs: int,
    lr: float,
    seed: int = 0,
) -> list[float]:
    """AdamW on per-label BCE; `batches(rng)` yields (inputs..., targets, mask). Returns epoch losses."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    losses = []
    model.train()
    for _ in range(epochs):
        total, count = 0.0, 0
        for *inputs, targets, mask in batches(rng):
            logits = model(*inputs)
            loss = (loss_fn(logits, targets) * mask).sum() / mask.sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, count = total + loss.item() * len(targets), count + len(targets)
        losses.append(total / max(count, 1))
    model.eval()
    return losses


def save_stage(
    path: Path, kind: str, signals: ToolSignals, model: torch.nn.Module, config: dict[str, Any]
) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "kind": kind,
            "fingerprint": signals.catalogue.fingerprint(),
            "tool_ids": list(signals.ids),
            "model": signals.model,
            "config": config,
            "state": model.state_dict(),
        },
        tmp,
    )
    tmp.replace(path)  # atomic: a crash never leaves a half-written model in place


def load_stage(path: Path, kind: str) -> dict[str, Any]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("kind") != kind:
        raise FailedPrecondition(f"{path} holds a {blob.get('kind')!r} model, not a {kind!r}")
    return blob
