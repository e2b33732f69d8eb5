"""sentence-transformers models (the embedded default, all-MiniLM-L6-v2, is one)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ferret.encoders.base import (
    EncodeOptions,
    Encoder,
    EncoderKind,
    ModelInfo,
    ModelLoadError,
    matryoshka,
)
from ferret.encoders.registry import default_minilm_path


class SentenceTransformerEncoder(Encoder):
    def __init__(self, name: str, path: str, options: Mapping[str, Any]):
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.path = path or default_minilm_path()
        device = options.get("device") or _default_device()
        try:
            self.model = SentenceTransformer(self.path, device=device, local_files_only=True)
        except OSError as exc:
            raise ModelLoadError(
                f"model {name!r}: cannot load a sentence-transformers model from {self.path}: {exc}"
            ) from exc
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        dim = self.model.get_embedding_dimension()
        self.batch_size = int(options.get("batch_size", 64))
        self.info = ModelInfo(
            name=name,
            family="sentence-transformers",
            kind=EncoderKind.DENSE,
            max_length=int(self.model.max_seq_length),
            dimension=int(dim),
            matryoshka_dims=tuple(options.get("matryoshka_dims", ())),
        )

    def token_ids(self, texts: list[str], options: EncodeOptions) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]

    def embed(self, texts: list[str], options: EncodeOptions) -> np.ndarray:
        # The server's batcher already bounds a call by its token budget; direct callers (offline builds,
        # tool catalogues) may pass thousands of texts, which sentence-transformers then encodes in
        # length-sorted sub-batches of `batch_size` instead of one batch that exhausts memory.
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        return matryoshka(np.asarray(vectors, dtype=np.float32), options.dimensions, options.normalize)

    def decode_tokens(self, ids: np.ndarray) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens([int(i) for i in ids])


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load(name: str, path: str, options: Mapping[str, Any]) -> Encoder:
    return SentenceTransformerEncoder(name, path, options)
