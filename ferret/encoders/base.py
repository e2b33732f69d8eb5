"""The small interface every encoder family implements.

The server never looks inside an encoder: it asks for token counts (to batch by a token budget and to
reject over-long input), then for vectors. Each family lives in its own module and registers a loader
in `ferret.encoders.registry.FAMILIES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from ferret.errors import InvalidArgument


class Side(StrEnum):
    """Which side of retrieval a text is on; asymmetric models encode the two differently."""

    QUERY = "query"
    DOCUMENT = "document"


class EncoderKind(StrEnum):
    DENSE = "dense"
    SPARSE = "sparse"
    COMPRESSOR = "compressor"


# The RPC that serves each kind, for messages that redirect a caller who picked the wrong one.
RPC_OF_KIND = {EncoderKind.DENSE: "Embed", EncoderKind.SPARSE: "EmbedSparse", EncoderKind.COMPRESSOR: "Compress"}


class EncoderError(InvalidArgument):
    """Bad input for an encoder (too long, wrong side, bad dimension...)."""


class ModelLoadError(RuntimeError):
    """A model that cannot be loaded as configured. Raised at start-up, never at query time."""


@dataclass(frozen=True)
class EncodeOptions:
    side: Side = Side.DOCUMENT
    # Task description for instruction-tuned models (e.g. KaLM's `Instruct: {task} \n Query: `).
    instruction: str | None = None
    # Matryoshka output size; None means the model's full dimension.
    dimensions: int | None = None
    normalize: bool = True
    # True: cut texts at the model's max length. False: a text that is too long is an error.
    truncate: bool = True


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    kind: EncoderKind
    max_length: int
    dimension: int = 0  # dense / compressor output size
    vocab_size: int = 0  # sparse vocabulary size
    sides: tuple[Side, ...] = (Side.QUERY, Side.DOCUMENT)
    matryoshka_dims: tuple[int, ...] = ()
    supports_instructions: bool = False
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class SparseVector:
    """One sparse vector: parallel arrays, indices strictly increasing."""

    indices: np.ndarray  # uint32
    values: np.ndarray  # float32

    def __post_init__(self) -> None:
        self.indices = np.asarray(self.indices, dtype=np.uint32)
        self.values = np.asarray(self.values, dtype=np.float32)


@dataclass
class CompressedText:
    """One text compressed: the vectors that replace its tokens, then where `<Cont>` goes.

    A decoder prompt gets the m rows of `vectors` in order, immediately followed by `continuation` (row
    `continuation_index` = m of the spliced block; `ferret.client.arc.splice_compressed` does this).
    Encoder-space results (project=False) carry no continuation, because it depends on the decoder;
    `ArcEncoder.continuation(decoder)` gives it.
    """

    vectors: np.ndarray  # float32 [m, dim]
    num_tokens: int  # n: tokens of the text (after truncation) that the m vectors replace
    pooling_factor: int
    decoder: str | None  # None: encoder space, before any projector
    continuation: np.ndarray | None  # float32 [dim], decoder space

    @property
    def m(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def continuation_index(self) -> int:
        return self.m


class Encoder(ABC):
    """Base of every encoder. Subclasses implement `token_ids` and one of `embed` / `embed_sparse`."""

    info: ModelInfo

    @abstractmethod
    def token_ids(self, texts: list[str], options: EncodeOptions) -> list[list[int]]:
        """Token ids each text becomes as fed to the model (prompt and special tokens included, not truncated)."""

    def check_options(self, options: EncodeOptions) -> None:
        """Raise EncoderError when `options` do not fit this model."""
        info = self.info
        if options.side not in info.sides:
            raise EncoderError(
                f"model {info.name!r} does not encode the {options.side.value} side; "
                f"it encodes: {', '.join(s.value for s in info.sides)}"
            )
        if options.dimensions is not None:
            if info.kind is not EncoderKind.DENSE:
                raise EncoderError(f"model {info.name!r} is {info.kind.value}; output dimensions apply to dense models")
            if not 0 < options.dimensions <= info.dimension:
                raise EncoderError(
                    f"dimensions={options.dimensions} is out of range for model {info.name!r}: "
                    f"ask for 1..{info.dimension}"
                )
        if options.instruction and not info.supports_instructions:
            raise EncoderError(f"model {info.name!r} takes no instruction; leave it empty")

    def embed(self, texts: list[str], options: EncodeOptions) -> np.ndarray:
        """Dense vectors, float32 [len(texts), dim]."""
        raise EncoderError(
            f"model {self.info.name!r} is {self.info.kind.value}, not dense; use {RPC_OF_KIND[self.info.kind]}"
        )

    def embed_sparse(self, texts: list[str], options: EncodeOptions) -> list[SparseVector]:
        """Sparse vectors over the model's vocabulary."""
        raise EncoderError(
            f"model {self.info.name!r} is {self.info.kind.value}, not sparse; use {RPC_OF_KIND[self.info.kind]}"
        )

    def decode_tokens(self, ids: np.ndarray) -> list[str]:
        """Vocabulary strings of token ids (for EmbedSparse's optional tokens)."""
        raise EncoderError(f"model {self.info.name!r} cannot decode token ids")


def matryoshka(vectors: np.ndarray, dimensions: int | None, normalize: bool) -> np.ndarray:
    """Truncate to `dimensions`, then L2-normalise if asked (the Matryoshka recipe: truncate, then renormalise)."""
    if dimensions is not None:
        vectors = vectors[:, :dimensions]
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(vectors, dtype=np.float32)
