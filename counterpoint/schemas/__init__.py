"""Request and response bodies of the HTTP API, shared by the gateway and the SDK; one module per resource.

The embeddings and generation shapes follow OpenAI's API so existing clients work unchanged; collection
and search shapes follow Qdrant's vocabulary (match, range, must/should/must_not). Every name is
re-exported here: import them as ``from counterpoint.schemas import SearchRequest``.

The counterpoint base: imports only pydantic and `counterpoint.decoding.params` (and, lazily,
`counterpoint.datasets` for a document's embedding text); never infra, services, workers or ui.
"""

from __future__ import annotations

from counterpoint.schemas.backups import (
    CollectionRestored,
    RegistryDump,
)
from counterpoint.schemas.base import (
    StrictModel,
    Usage,
)
from counterpoint.schemas.collections import (
    COLLECTION_NAME,
    INDEX_BOUNDS,
    PAYLOAD_FIELD,
    RESERVED_PAYLOAD_KEYS,
    CollectionCreate,
    CollectionInfo,
    CollectionList,
    Distance,
    Document,
    FieldType,
    IndexConfig,
    IndexState,
    IngestRequest,
    IngestResponse,
    RecallCheckRequest,
    RecallReport,
    RecallStep,
    ReindexRequest,
    SearchSettingsUpdate,
    metadata_mismatch,
)
from counterpoint.schemas.embeddings import (
    EmbeddingItem,
    EmbeddingRequest,
    EmbeddingResponse,
)
from counterpoint.schemas.generation import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatDelta,
    ChatMessage,
    CompletionChoice,
    CompletionChunk,
    CompletionChunkChoice,
    CompletionRequest,
    CompletionResponse,
    CompletionUsage,
    FinishDetail,
    FinishReason,
    GenerationChunk,
    GenerationRequest,
    GenerationResponse,
    StreamOptions,
)
from counterpoint.schemas.health import (
    ComponentHealth,
    Health,
)
from counterpoint.schemas.jobs import (
    JobCreate,
    JobInfo,
    JobList,
    JobLogs,
)
from counterpoint.schemas.keys import (
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyList,
)
from counterpoint.schemas.models import (
    AliasUpdate,
    ModelCard,
    ModelList,
    ModelLoad,
    ModelVersionInfo,
    RegisteredModel,
    RegisteredModelList,
)
from counterpoint.schemas.rerank import (
    RerankDocument,
    RerankRequest,
    RerankResponse,
    RerankResult,
)
from counterpoint.schemas.search import (
    Condition,
    Filter,
    MatchAny,
    Range,
    SearchHit,
    SearchRequest,
    SearchResponse,
)
from counterpoint.schemas.vectors import (
    VectorPayload,
    VectorUploadHeader,
    VectorUploadRequest,
)

__all__ = [
    "AliasUpdate",
    "COLLECTION_NAME",
    "ChatChoice",
    "ChatChunkChoice",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "ChatDelta",
    "ChatMessage",
    "CollectionCreate",
    "CollectionInfo",
    "CollectionList",
    "CollectionRestored",
    "CompletionChoice",
    "CompletionChunk",
    "CompletionChunkChoice",
    "CompletionRequest",
    "CompletionResponse",
    "CompletionUsage",
    "ComponentHealth",
    "Condition",
    "Distance",
    "Document",
    "EmbeddingItem",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "FieldType",
    "Filter",
    "FinishDetail",
    "FinishReason",
    "GenerationChunk",
    "GenerationRequest",
    "GenerationResponse",
    "Health",
    "INDEX_BOUNDS",
    "IndexConfig",
    "SearchSettingsUpdate",
    "IndexState",
    "IngestRequest",
    "IngestResponse",
    "JobCreate",
    "JobInfo",
    "JobList",
    "JobLogs",
    "KeyCreate",
    "KeyCreated",
    "KeyInfo",
    "KeyList",
    "MatchAny",
    "ModelCard",
    "ModelList",
    "ModelLoad",
    "ModelVersionInfo",
    "PAYLOAD_FIELD",
    "RESERVED_PAYLOAD_KEYS",
    "Range",
    "RecallCheckRequest",
    "RecallReport",
    "RecallStep",
    "RegisteredModel",
    "RegisteredModelList",
    "RegistryDump",
    "ReindexRequest",
    "RerankDocument",
    "RerankRequest",
    "RerankResponse",
    "RerankResult",
    "SearchHit",
    "SearchRequest",
    "SearchResponse",
    "StreamOptions",
    "StrictModel",
    "Usage",
    "VectorPayload",
    "VectorUploadHeader",
    "VectorUploadRequest",
    "metadata_mismatch",
]
