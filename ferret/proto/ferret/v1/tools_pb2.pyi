from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetrievalMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RETRIEVAL_MODE_UNSPECIFIED: _ClassVar[RetrievalMode]
    RETRIEVAL_MODE_DESCRIPTION: _ClassVar[RetrievalMode]
    RETRIEVAL_MODE_TOOL2VEC: _ClassVar[RetrievalMode]
    RETRIEVAL_MODE_BM25: _ClassVar[RetrievalMode]
    RETRIEVAL_MODE_HYBRID: _ClassVar[RetrievalMode]
RETRIEVAL_MODE_UNSPECIFIED: RetrievalMode
RETRIEVAL_MODE_DESCRIPTION: RetrievalMode
RETRIEVAL_MODE_TOOL2VEC: RetrievalMode
RETRIEVAL_MODE_BM25: RetrievalMode
RETRIEVAL_MODE_HYBRID: RetrievalMode

class Tool(_message.Message):
    __slots__ = ("id", "name", "description", "parameters_json", "namespace", "tags", "examples", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    parameters_json: str
    namespace: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    examples: _containers.RepeatedScalarFieldContainer[str]
    version: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., parameters_json: _Optional[str] = ..., namespace: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., examples: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ...) -> None: ...

class UpsertToolsRequest(_message.Message):
    __slots__ = ("tools",)
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    tools: _containers.RepeatedCompositeFieldContainer[Tool]
    def __init__(self, tools: _Optional[_Iterable[_Union[Tool, _Mapping]]] = ...) -> None: ...

class DeleteToolsRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ToolsWriteResponse(_message.Message):
    __slots__ = ("catalogue_version", "count")
    CATALOGUE_VERSION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    catalogue_version: int
    count: int
    def __init__(self, catalogue_version: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class ListToolsRequest(_message.Message):
    __slots__ = ("namespace", "tags")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, namespace: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class ListToolsResponse(_message.Message):
    __slots__ = ("catalogue_version", "tools")
    CATALOGUE_VERSION_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    catalogue_version: int
    tools: _containers.RepeatedCompositeFieldContainer[Tool]
    def __init__(self, catalogue_version: _Optional[int] = ..., tools: _Optional[_Iterable[_Union[Tool, _Mapping]]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("query", "tool_ids")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOOL_IDS_FIELD_NUMBER: _ClassVar[int]
    query: str
    tool_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, query: _Optional[str] = ..., tool_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordUsageRequest(_message.Message):
    __slots__ = ("usages",)
    USAGES_FIELD_NUMBER: _ClassVar[int]
    usages: _containers.RepeatedCompositeFieldContainer[Usage]
    def __init__(self, usages: _Optional[_Iterable[_Union[Usage, _Mapping]]] = ...) -> None: ...

class RecordUsageResponse(_message.Message):
    __slots__ = ("catalogue_version", "count")
    CATALOGUE_VERSION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    catalogue_version: int
    count: int
    def __init__(self, catalogue_version: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class SetMode(_message.Message):
    __slots__ = ("threshold", "max_tools")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_TOOLS_FIELD_NUMBER: _ClassVar[int]
    threshold: float
    max_tools: int
    def __init__(self, threshold: _Optional[float] = ..., max_tools: _Optional[int] = ...) -> None: ...

class RetrieveToolsRequest(_message.Message):
    __slots__ = ("query", "k", "mode", "instruction", "namespace", "tags", "classifier", "rerank", "rewrite", "set_mode")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    REWRITE_FIELD_NUMBER: _ClassVar[int]
    SET_MODE_FIELD_NUMBER: _ClassVar[int]
    query: str
    k: int
    mode: RetrievalMode
    instruction: str
    namespace: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    classifier: bool
    rerank: bool
    rewrite: bool
    set_mode: SetMode
    def __init__(self, query: _Optional[str] = ..., k: _Optional[int] = ..., mode: _Optional[_Union[RetrievalMode, str]] = ..., instruction: _Optional[str] = ..., namespace: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., classifier: _Optional[bool] = ..., rerank: _Optional[bool] = ..., rewrite: _Optional[bool] = ..., set_mode: _Optional[_Union[SetMode, _Mapping]] = ...) -> None: ...

class ToolHit(_message.Message):
    __slots__ = ("id", "name", "score", "signals", "probability")
    class SignalsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    score: float
    signals: _containers.ScalarMap[str, float]
    probability: float
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., score: _Optional[float] = ..., signals: _Optional[_Mapping[str, float]] = ..., probability: _Optional[float] = ...) -> None: ...

class RetrieveToolsResponse(_message.Message):
    __slots__ = ("catalogue_version", "hits", "query", "rewritten", "rewrite_note", "time_ms")
    CATALOGUE_VERSION_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    REWRITTEN_FIELD_NUMBER: _ClassVar[int]
    REWRITE_NOTE_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    catalogue_version: int
    hits: _containers.RepeatedCompositeFieldContainer[ToolHit]
    query: str
    rewritten: bool
    rewrite_note: str
    time_ms: float
    def __init__(self, catalogue_version: _Optional[int] = ..., hits: _Optional[_Iterable[_Union[ToolHit, _Mapping]]] = ..., query: _Optional[str] = ..., rewritten: _Optional[bool] = ..., rewrite_note: _Optional[str] = ..., time_ms: _Optional[float] = ...) -> None: ...

class RetrieveToolsBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RetrieveToolsRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[RetrieveToolsRequest, _Mapping]]] = ...) -> None: ...

class RetrieveToolsBatchResponse(_message.Message):
    __slots__ = ("catalogue_version", "results")
    CATALOGUE_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    catalogue_version: int
    results: _containers.RepeatedCompositeFieldContainer[RetrieveToolsResponse]
    def __init__(self, catalogue_version: _Optional[int] = ..., results: _Optional[_Iterable[_Union[RetrieveToolsResponse, _Mapping]]] = ...) -> None: ...
