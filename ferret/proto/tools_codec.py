"""Conversions between the `ferret.v1` tools messages and the tool engine's types.

Shared by the server (request -> engine, engine -> response) and the Python client (the reverse).
Parameters travel as JSON text and are parsed (and checked to be a JSON object) on the way in.
"""

from __future__ import annotations

import json

from ferret.errors import InvalidArgument
from ferret.proto.ferret.v1 import tools_pb2 as pb
from ferret.tools.catalogue import Tool, parse_parameters
from ferret.tools.retriever import Mode, RetrieveRequest, SetOptions, ToolHit

MODES = {
    pb.RETRIEVAL_MODE_UNSPECIFIED: Mode.HYBRID,
    pb.RETRIEVAL_MODE_DESCRIPTION: Mode.DESCRIPTION,
    pb.RETRIEVAL_MODE_TOOL2VEC: Mode.TOOL2VEC,
    pb.RETRIEVAL_MODE_BM25: Mode.BM25,
    pb.RETRIEVAL_MODE_HYBRID: Mode.HYBRID,
}
MODE_VALUES = {
    Mode.DESCRIPTION: pb.RETRIEVAL_MODE_DESCRIPTION,
    Mode.TOOL2VEC: pb.RETRIEVAL_MODE_TOOL2VEC,
    Mode.BM25: pb.RETRIEVAL_MODE_BM25,
    Mode.HYBRID: pb.RETRIEVAL_MODE_HYBRID,
}


def tool_from_proto(message: pb.Tool) -> Tool:
    return Tool(
        id=message.id,
        name=message.name,
        description=message.description,
        parameters=parse_parameters(message.parameters_json, message.id),
        namespace=message.namespace,
        tags=tuple(message.tags),
        examples=tuple(message.examples),
        version=message.version,
    )


def tool_to_proto(tool: Tool) -> pb.Tool:
    """JSON text in `parameters` travels as it is: the server checks it (INVALID_ARGUMENT when not JSON)."""
    parameters = tool.parameters
    if not isinstance(parameters, str):
        parameters = json.dumps(parameters, sort_keys=True) if parameters else ""
    return pb.Tool(
        id=tool.id,
        name=tool.name,
        description=tool.description,
        parameters_json=parameters,
        namespace=tool.namespace,
        tags=list(tool.tags),
        examples=list(tool.examples),
        version=tool.version,
    )


def request_from_proto(message: pb.RetrieveToolsRequest) -> RetrieveRequest:
    if message.mode not in MODES:
        raise InvalidArgument(
            f"unknown retrieval mode value {message.mode}; use DESCRIPTION, TOOL2VEC, BM25 or HYBRID"
        )
    set_mode = None
    if message.HasField("set_mode"):
        defaults = SetOptions()
        s = message.set_mode
        set_mode = SetOptions(
            threshold=s.threshold if s.HasField("threshold") else defaults.threshold,
            max_tools=s.max_tools if s.HasField("max_tools") else defaults.max_tools,
        )
    return RetrieveRequest(
        query=message.query,
        k=message.k,
        mode=MODES[message.mode],
        instruction=message.instruction,
        namespace=message.namespace if message.HasField("namespace") else None,
        tags=tuple(message.tags),
        classifier=message.classifier if message.HasField("classifier") else None,
        rerank=message.rerank if message.HasField("rerank") else None,
        set_mode=set_mode,
    )


def request_to_proto(request: RetrieveRequest, rewrite: bool = False) -> pb.RetrieveToolsRequest:
    """The message of one retrieval (`Client.retrieve_tools_batch` sends a list of these)."""
    try:
        mode = MODE_VALUES[Mode(request.mode)]
    except ValueError:
        raise InvalidArgument(
            f"unknown mode {request.mode!r}; use one of {', '.join(m.value for m in Mode)}"
        ) from None
    if request.k < 0:
        raise InvalidArgument(f"k={request.k} is negative; ask for 1 or more tools")
    message = pb.RetrieveToolsRequest(
        query=request.query,
        k=request.k,
        mode=mode,
        instruction=request.instruction,
        tags=list(request.tags),
        rewrite=rewrite,
    )
    if request.namespace is not None:
        message.namespace = request.namespace
    if request.classifier is not None:
        message.classifier = request.classifier
    if request.rerank is not None:
        message.rerank = request.rerank
    if request.set_mode is not None:
        message.set_mode.CopyFrom(
            pb.SetMode(threshold=request.set_mode.threshold, max_tools=request.set_mode.max_tools)
        )
    return message


def hit_to_proto(hit: ToolHit) -> pb.ToolHit:
    return pb.ToolHit(
        id=hit.tool_id, name=hit.name, score=hit.score, signals=hit.signals, probability=hit.probability
    )


def hit_from_proto(message: pb.ToolHit) -> ToolHit:
    return ToolHit(
        tool_id=message.id,
        name=message.name,
        score=message.score,
        signals=dict(message.signals),
        probability=message.probability if message.HasField("probability") else None,
    )
