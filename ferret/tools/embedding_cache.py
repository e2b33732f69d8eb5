"""An Encoder wrapper that remembers vectors by text, saved to a .npz file.

Evaluation embeds the same 20k MetaTool queries on every run; on a shared 2-core CPU that is the bulk
of the time, so `ferret tools eval --cache FILE` keeps them. Vectors are stored as the wrapped encoder
returns them for the given options (the options are part of the key).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferret.encoders.base import EncodeOptions, Encoder


class CachedEncoder(Encoder):
    def __init__(self, encoder: Encoder, path: str | Path):
        self.encoder, self.path = encoder, Path(path)
        self.info = encoder.info
        self._vectors: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as data:
                self._vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    def token_ids(self, texts: list[str], options: EncodeOptions) -> list[list[int]]:
        return self.encoder.token_ids(texts, options)

    def embed(self, texts: list[str], options: EncodeOptions) -> np.ndarray:
        keys = [f"{options!r}\x00{t}" for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._vectors))
        if missing:
            texts_of = dict(zip(keys, texts, strict=True))
            fresh = self.encoder.embed([texts_of[k] for k in missing], options)
            self._vectors.update(zip(missing, fresh, strict=True))
        return (
            np.stack([self._vectors[k] for k in keys])
            if keys
            else np.zeros((0, self.info.dimension), np.float32)
        )

    def save(self) -> None:
        keys = list(self._vectors)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self._vectors[k] for k in keys]))
        tmp.replace(self.path)
