"""The tool-retrieval engine: one method per ToolsService RPC, over one data dir.

    UpsertTools        -> ToolEngine.upsert_tools(tools) -> catalogue version
    DeleteTools        -> ToolEngine.delete_tools(ids) -> catalogue version
    ListTools          -> ToolEngine.list_tools(namespace, tags) -> tools
    RecordUsage        -> ToolEngine.record_usage([(query, tool_ids)])
    RetrieveTools      -> ToolEngine.retrieve_tools(request) -> hits
    RetrieveToolsBatch -> ToolEngine.retrieve_tools_batch(requests) -> hits per request

Catalogue changes are incremental: an upsert re-embeds only the tools whose text changed; no trained
stage is rebuilt (the classifier goes stale and switches itself off until `train-mlc` is rerun).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from ferret.encoders.base import Encoder
from ferret.tools import mlc, refiner
from ferret.tools.catalogue import Tool, ToolCatalogue
from ferret.tools.retriever import DEFAULT_WEIGHTS, HybridWeights, RetrieveRequest, ToolHit, ToolRetriever
from ferret.tools.signals import ToolSignals


class ToolEngine:
    def __init__(
        self,
        data_dir: str | Path,
        encoder: Encoder,
        weights: HybridWeights = DEFAULT_WEIGHTS,
        classifier_default: bool = False,
        rerank_default: bool = False,
    ):
        self.data_dir = Path(data_dir)
        self.catalogue = ToolCatalogue(self.data_dir)
        self.signals = ToolSignals(self.catalogue, encoder)
        self.retriever = ToolRetriever(
            self.signals, weights, classifier_default=classifier_default, rerank_default=rerank_default
        )
        self.reload_stages()

    @property
    def classifier_path(self) -> Path:
        return self.data_dir / mlc.FILE_NAME

    @property
    def refiner_path(self) -> Path:
        return self.data_dir / refiner.FILE_NAME

    def reload_stages(self) -> None:
        """Pick up trained second stages saved in the data dir (after `train-mlc` / `train-refiner`)."""
        path = self.classifier_path
        self.retriever.classifier = mlc.MultiLabelClassifier.load(path) if path.exists() else None
        path = self.refiner_path
        self.retriever.refiner = refiner.ToolRefiner.load(path) if path.exists() else None

    # Writes hold the signals' lock across the catalogue change and the refresh, so a versioned read
    # never pairs a new catalogue version with signals of the old catalogue.
    def upsert_tools(self, tools: Sequence[Tool]) -> int:
        with self.signals._lock:
            version = self.catalogue.upsert(tools)
            self.signals.refresh()
        return version

    def delete_tools(self, tool_ids: Sequence[str]) -> int:
        with self.signals._lock:
            version = self.catalogue.delete(tool_ids)
            self.signals.refresh()
        return version

    def version(self) -> int:
        return self.catalogue.version()

    def list_tools(self, namespace: str | None = None, tags: Iterable[str] = ()) -> list[Tool]:
        return self.catalogue.list(namespace, tags)

    def record_usage(self, usages: Sequence[tuple[str, Sequence[str]]]) -> None:
        self.signals.record_usage(usages)

    def retrieve_tools(self, request: RetrieveRequest) -> list[ToolHit]:
        return self.retriever.retrieve(request)

    def retrieve_tools_batch(self, requests: Sequence[RetrieveRequest]) -> list[list[ToolHit]]:
        return self.retriever.retrieve_batch(requests)

    def retrieve_tools_versioned(self, requests: Sequence[RetrieveRequest]) -> tuple[int, list[list[ToolHit]]]:
        """The hits of `retrieve_tools_batch` and the catalogue version they were ranked over."""
        with self.signals._lock:
            return self.catalogue.version(), self.retriever.retrieve_batch(requests)

    def train_classifier(self, **options) -> list[float]:
        losses = mlc.train_mlc(self.signals, self.classifier_path, **options)
        self.reload_stages()
        return losses

    def train_refiner(self, **options) -> list[float]:
        losses = refiner.train_refiner(self.signals, self.refiner_path, **options)
        self.reload_stages()
        return losses

    def close(self) -> None:
        self.catalogue.close()
