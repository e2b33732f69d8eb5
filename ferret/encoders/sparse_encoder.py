"""sentence-transformers `SparseEncoder` directories (e.g. naver/splade-v3 as published, OpenSearch models).

The library runs the model's own module stack (MLM transformer + SpladePooling, Router for inference-free
query sides), so its pooling settings come from the directory. Ferret adds the per-side `max_active_dims`
and the length check. Padding is the tokenizer's (right for BERT-class models).

Options: max_active_dims (int or {query, document}), device, max_length.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ferret.encoders.base import (
    EncodeOptions,
    Encoder,
    EncoderError,
    EncoderKind,
    ModelInfo,
    ModelLoadError,
    Side,
    SparseVector,
)
from ferret.encoders.hf_loading import select_device
from ferret.encoders.splade_pooling import parse_max_active_dims

FAMILY = "sparse-encoder"
OPTIONS = frozenset({"max_active_dims", "device", "max_length"})


class SparseEncoderModel(Encoder):
    def __init__(self, name: str, path: str, options: Mapping[str, Any]):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SparseEncoder

        unknown = set(options) - OPTIONS
        if unknown:
            raise ModelLoadError(
                f"model {name!r} ({FAMILY}): unknown options {sorted(unknown)}; "
                f"known: {', '.join(sorted(OPTIONS))}"
            )
        if not path or not (Path(path) / "modules.json").is_file():
            raise ModelLoadError(
                f"model {name!r} ({FAMILY}): {path or '<no path>'} is not a sentence-transformers "
                f"directory (no modules.json); a plain masked-LM directory is family 'splade'"
            )
        device = select_device(name, options.get("device"))
        self.model = SparseEncoder(path, device=str(device), local_files_only=True)
        self.model.eval()
        if "max_length" in options:
            self.model.max_seq_length = int(options["max_length"])
        self.tokenizer = self.model.tokenizer
        self.max_active_dims = parse_max_active_dims(name, options.get("max_active_dims"))
        # The output size is the vocabulary of the MLM head, which the library reports only through an
        # encoding (its get_embedding_dimension is the hidden size for some stacks): probe once at start-up.
        with torch.inference_mode():
            probe = self.model.encode_document(
                ["a"], convert_to_tensor=True, convert_to_sparse_tensor=False, show_progress_bar=False
            )
        self.info = ModelInfo(
            name=name,
            family=FAMILY,
            kind=EncoderKind.SPARSE,
            max_length=int(self.model.max_seq_length),
            vocab_size=int(probe.shape[1]),
        )

    def token_ids(self, texts: list[str], options: EncodeOptions) -> list[list[int]]:
        self.check_options(options)
        return self.tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]

    def embed_sparse(self, texts: list[str], options: EncodeOptions) -> list[SparseVector]:
        if not texts:
            return []
        if not options.truncate:
            for i, ids in enumerate(self.token_ids(texts, options)):
                if len(ids) > self.info.max_length:
                    raise EncoderError(
                        f"text {i} is {len(ids)} tokens; model {self.info.name!r} takes at most "
                        f"{self.info.max_length}; shorten it or allow truncation"
                    )
        self.check_options(options)
        encode = self.model.encode_query if options.side is Side.QUERY else self.model.encode_document
        with torch.inference_mode():
            weights = encode(
                list(texts),
                batch_size=len(texts),
                convert_to_tensor=True,
                convert_to_sparse_tensor=False,
                max_active_dims=self.max_active_dims[options.side],
                show_progress_bar=False,
            )
        rows = weights.float().cpu().numpy()
        return [SparseVector(indices=np.flatnonzero(row), values=row[np.flatnonzero(row)]) for row in rows]

    def decode_tokens(self, ids: np.ndarray) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens([int(i) for i in ids])


def load(name: str, path: str, options: Mapping[str, Any]) -> Encoder:
    return SparseEncoderModel(name, path, options)
