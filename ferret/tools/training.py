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


def held_out(records: int, every: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) record indices: every `every`-th record is held out for early stopping; with
    fewer than 2 * `every` records nothing is held out (too few to judge by)."""
    index = np.arange(records)
    if records < 2 * every:
        return index, index[:0]
    return index[index % every != 0], index[index % every == 0]


Batches = Callable[[np.random.Generator, np.ndarray], Iterable[tuple]]


def train_bce(
    model: torch.nn.Module,
    batches: Batches,
    records: int,
    epochs: int,
    lr: float,
    seed: int = 0,
    patience: int = 2,
) -> list[float]:
    """AdamW on per-label BCE; `batches(rng, indices)` yields (inputs..., targets, mask) over those
    records (shuffled when rng is given). Every 10th record is held out: training stops once its loss
    has not improved for `patience` epochs, and the model keeps the weights of its best epoch.
    Returns the training loss of each epoch run."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    fit, validation = held_out(records)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")

    def masked_loss(inputs: list, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (loss_fn(model(*inputs), targets) * mask).sum() / mask.sum()

    losses: list[float] = []
    best, best_state, since_best = float("inf"), None, 0
    for _ in range(epochs):
        model.train()
        total, count = 0.0, 0
        for *inputs, targets, mask in batches(rng, fit):
            loss = masked_loss(inputs, targets, mask)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, count = total + loss.item() * len(targets), count + len(targets)
        losses.append(total / max(count, 1))
        if not len(validation):
            continue
        model.eval()
        with torch.inference_mode():
            parts = [(masked_loss(i, t, m).item(), len(t)) for *i, t, m in batches(None, validation)]
        held_loss = sum(loss * n for loss, n in parts) / sum(n for _, n in parts)
        if held_loss < best:
            best, since_best = held_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since_best += 1
            if since_best >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
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
