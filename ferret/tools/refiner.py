"""ToolRefiner-style reranker: scores the top candidates jointly from the query and the candidates' vectors.

As in Tool2Vec's ToolRefiner, the query and the K candidate tool vectors form one sequence that a small
Transformer encoder reads, so each candidate attends to the query and to the other candidates; a linear
head gives one logit per candidate, trained with per-candidate BCE. Differences, for CPU speed: the
query enters as its (frozen) sentence embedding, not as DeBERTa tokens, and each candidate token is
built from its Tool2Vec vector, its description vector, their products with the query and the two
cosines.

Training candidates come from recorded usage. A training query is part of its gold tools' Tool2Vec
sums, which would make gold tools look closer than they will for a new query; so gold tools' vectors
are recomputed leave-one-out (the query's own vector taken out of the sum) when building candidates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ferret.tools.retriever import SecondStage
from ferret.tools.signals import ToolSignals, blend
from ferret.tools.training import load_stage, save_stage, train_bce, usage_data

KIND = "refiner"
FILE_NAME = "refiner.pt"


class RefinerModel(torch.nn.Module):
    def __init__(self, dim: int, width: int = 128, layers: int = 2, heads: int = 4):
        super().__init__()
        self.query_in = torch.nn.Linear(dim, width)
        self.tool_in = torch.nn.Linear(4 * dim + 2, width)
        self.kind = torch.nn.Parameter(torch.zeros(2, width))  # query token vs candidate token
        layer = torch.nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.1, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(width, 1)

    def forward(self, query: torch.Tensor, tool2vec: torch.Tensor, description: torch.Tensor) -> torch.Tensor:
        """query [B, D]; tool2vec, description [B, K, D] -> logits [B, K]."""
        q = query[:, None, :]
        cos = torch.stack([(tool2vec * q).sum(-1), (description * q).sum(-1)], dim=-1)
        tools = self.tool_in(torch.cat([tool2vec, description, tool2vec * q, description * q, cos], dim=-1))
        sequence = torch.cat([self.query_in(q) + self.kind[0], tools + self.kind[1]], dim=1)
        return self.head(self.encoder(sequence)[:, 1:]).squeeze(-1)


class ToolRefiner(SecondStage):
    name = "refiner"

    def __init__(self, model: RefinerModel, fingerprint: str, encoder_model: str):
        self.model, self.fingerprint, self.encoder_model = model, fingerprint, encoder_model

    @classmethod
    def load(cls, path: str | Path) -> ToolRefiner:
        blob = load_stage(Path(path), KIND)
        model = RefinerModel(**blob["config"])
        model.load_state_dict(blob["state"])
        model.eval()
        return cls(model, blob["fingerprint"], blob["model"])

    def is_stale(self, signals: ToolSignals) -> str | None:
        # It scores vectors, not fixed labels, so new or changed tools are fine; another encoder is not.
        if self.encoder_model != signals.model:
            return f"it was trained on {self.encoder_model!r} embeddings, the tools use {signals.model!r}"
        return None

    def probabilities(
        self, signals: ToolSignals, query_vectors: np.ndarray, candidates: np.ndarray, first_stage: np.ndarray
    ) -> np.ndarray:
        t2v, desc = signals.tool2vec()[candidates], signals.description[candidates]
        with torch.inference_mode():
            logits = self.model(
                torch.from_numpy(query_vectors), torch.from_numpy(t2v), torch.from_numpy(desc)
            )
        return torch.sigmoid(logits).numpy()


def leave_one_out_candidates(
    signals: ToolSignals, vectors: np.ndarray, gold_rows: list[list[int]], k: int, description_weight: float
) -> tuple[np.ndarray, dict[tuple[int, int], np.ndarray]]:
    """Top-k candidates per training query, ranked with gold tools' Tool2Vec vectors computed leave-one-out.

    Returns (candidate rows [N, k], {(query, position in its candidates): leave-one-out Tool2Vec vector}).
    """
    t2v = signals.tool2vec()
    scores = vectors @ t2v.T + description_weight * (vectors @ signals.description.T)
    loo: dict[tuple[int, int], np.ndarray] = {}
    for i, rows in enumerate(gold_rows):
        for row in rows:
            vec = blend(
                signals.usage_sum[row] - vectors[i],
                signals.usage_count[row] - 1,
                signals.description[row],
                signals.prior_usages,
            )
            loo[i, row] = vec
            scores[i, row] = vectors[i] @ vec + description_weight * (vectors[i] @ signals.description[row])
    candidates = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    by_position = {}
    for (i, row), vec in loo.items():
        hit = np.nonzero(candidates[i] == row)[0]
        if hit.size:
            by_position[i, int(hit[0])] = vec
    return candidates, by_position


def train_refiner(
    signals: ToolSignals,
    out_path: str | Path,
    candidates: int = 32,
    epochs: int = 8,
    lr: float = 5e-4,
    batch_size: int = 64,
    description_weight: float = 0.3,
    seed: int = 0,
) -> list[float]:
    """Train on recorded usage (leave-one-out candidates) and save; returns per-epoch losses."""
    data = usage_data(signals)
    k = min(candidates, len(signals.ids))
    cand, loo = leave_one_out_candidates(signals, data.vectors, data.gold_rows, k, description_weight)
    labels = torch.from_numpy(np.take_along_axis(data.labels, cand, axis=1))
    t2v_table, desc_table = signals.tool2vec(), signals.description
    loo_at: dict[int, list[tuple[int, np.ndarray]]] = {}
    for (i, pos), vec in loo.items():
        loo_at.setdefault(i, []).append((pos, vec))
    mask = torch.ones(batch_size, k)

    def batch(idx: np.ndarray) -> tuple:
        # Gathered per batch: all N x k x D candidate vectors at once would take gigabytes.
        t2v = t2v_table[cand[idx]]
        for b, i in enumerate(idx):
            for pos, vec in loo_at.get(int(i), ()):
                t2v[b, pos] = vec
        return (
            torch.from_numpy(data.vectors[idx]),
            torch.from_numpy(t2v),
            torch.from_numpy(desc_table[cand[idx]]),
            labels[idx],
            mask[: len(idx)],
        )

    def batches(rng: np.random.Generator | None, indices: np.ndarray):
        order = indices if rng is None else rng.permutation(indices)
        return (batch(order[i : i + batch_size]) for i in range(0, len(order), batch_size))

    torch.manual_seed(seed)
    config = {"dim": int(data.vectors.shape[1])}
    model = RefinerModel(**config)
    losses = train_bce(model, batches, len(cand), epochs, lr, seed)
    save_stage(Path(out_path), KIND, signals, model, config)
    return losses
