"""Result types of the client's tool-retrieval methods (`Client.upsert_tools`, `Client.retrieve_tools`...)."""

from __future__ import annotations

from dataclasses import dataclass

from ferret.proto import tools_codec
from ferret.proto.ferret.v1 import tools_pb2 as pb
from ferret.tools.catalogue import Tool
from ferret.tools.retriever import ToolHit


@dataclass(frozen=True)
class ToolsWriteResult:
    catalogue_version: int
    count: int  # tools written or deleted, or usage records stored


@dataclass(frozen=True)
class ToolList:
    catalogue_version: int
    tools: list[Tool]  # sorted by id; `parameters` parsed into a dict


@dataclass(frozen=True)
class ToolRetrieval:
    catalogue_version: int  # the catalogue the hits were ranked over
    hits: list[ToolHit]  # best first; `signals` holds each first-stage signal's score
    query: str  # the query retrieval used (the rewrite when `rewritten`)
    rewritten: bool
    rewrite_note: str  # why the original query was kept, when a rewrite was asked for and fell back
    time_ms: float

    @classmethod
    def from_proto(cls, m: pb.RetrieveToolsResponse) -> ToolRetrieval:
        return cls(
            m.catalogue_version,
            [tools_codec.hit_from_proto(h) for h in m.hits],
            m.query,
            m.rewritten,
            m.rewrite_note,
            m.time_ms,
        )
