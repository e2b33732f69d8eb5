"""Multi-label classifier (MLC) over the query embedding: one output per tool, per-label BCE.

The Tool2Vec paper's MLC is a fine-tuned DeBERTa over the query text; here the head sits on the frozen
query embedding the first stage already computed, so a query costs one extra matrix product and
training takes seconds on CPU. The label space is the catalogue's tool list at training time, so the
model stores the catalogue fingerprint and is stale once any tool is added, removed or re-versioned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ferret.tools.retriever import SecondStage
from ferret.tools.signals import ToolSignals
from ferret.tools.training import load_stage, save_stage, train_bce, usage_data

KIND = "mlc"
FILE_NAME = "mlc.pt"


class ClassifierHead(torch.nn.Module):
    def __init__(self, dim: int, tools: int, hidden: int):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(dim, hidden),
            torch.nn.GELU(),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(hidden, tools),
        )

    def forward(self, query_vectors: torch.Tensor) -> torch.Tensor:
        return self.net(query_vectors)


class MultiLabelClassifier(SecondStage):
    name = "classifier"

    def __init__(self, head: ClassifierHead, fingerprint: str, tool_ids: list[str], model: str):
        self.head, self.fingerprint, self.tool_ids, self.model = head, fingerprint, tool_ids, model

    @classmethod
    def load(cls, path: str | Path) -> MultiLabelClassifier:
        blob = load_stage(Path(path), KIND)
        cfg = blob["config"]
        head = ClassifierHead(cfg["dim"], len(blob["tool_ids"]), cfg["hidden"])
        head.load_state_dict(blob["state"])
        head.eval()
        return cls(head, blob["fingerprint"], blob["tool_ids"], blob["model"])

    def is_stale(self, signals: ToolSignals) -> str | None:
        if self.model != signals.model:
            return f"it was trained on {self.model!r} embeddings, the tools use {signals.model!r}"
        current = signals.catalogue.fingerprint()
        if current != self.fingerprint or self.tool_ids != signals.ids:
            return (
                f"it was trained on catalogue {self.fingerprint} ({len(self.tool_ids)} tools), the catalogue "
                f"is now {current} ({len(signals.ids)} tools)"
            )
        return None

    def probabilities(
        self, signals: ToolSignals, query_vectors: np.ndarray, candidates: np.ndarray, first_stage: np.ndarray
    ) -> np.ndarray:
        with torch.inference_mode():
            logits = self.head(torch.from_numpy(query_vectors)).numpy()
        # Rows of signals.ids equal label indices: is_stale guarantees the same ordered tool list.
        return 1.0 / (1.0 + np.exp(-np.take_along_axis(logits, candidates, axis=1)))


def train_mlc(
    signals: ToolSignals,
    out_path: str | Path,
    epochs: int = 30,
    hidden: int = 1024,
    lr: float = 2e-3,
    batch_size: int = 256,
    seed: int = 0,
) -> list[float]:
    """Train on all recorded usage and save next to the catalogue; returns per-epoch losses."""
    data = usage_data(signals)
    x, y = torch.from_numpy(data.vectors), torch.from_numpy(data.labels)
    ones = torch.ones_like(y[:1]).expand(batch_size, -1)

    def batches(rng: np.random.Generator | None, indices: np.ndarray):
        order = torch.from_numpy(indices if rng is None else rng.permutation(indices))
        return [(x[idx], y[idx], ones[: len(idx)]) for idx in order.split(batch_size)]

    torch.manual_seed(seed)
    head = ClassifierHead(x.shape[1], y.shape[1], hidden)
    losses = train_bce(head, batches, len(x), epochs, lr, seed)
    save_stage(Path(out_path), KIND, signals, head, {"dim": int(x.shape[1]), "hidden": hidden})
    return losses
