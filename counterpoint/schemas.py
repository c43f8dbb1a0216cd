"""Request and response bodies of the HTTP API, shared by the gateway and the SDK.

The embeddings shapes follow OpenAI's API so existing clients work unchanged; collection
and search shapes follow Qdrant's vocabulary (match, range, must/should/must_not).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from counterpoint.decoding.params import MAX_CS_TOP_K, GenerationParams

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,62}$")
RESERVED_PAYLOAD_KEYS = frozenset({"id", "text", "title"})
# Indexed metadata field names: what both vector engines accept as a (one-level) field path.
PAYLOAD_FIELD = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

Distance = Literal["cosine", "dot", "euclid"]
FieldType = Literal["keyword", "integer", "float", "bool"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- embeddings ------------------------------------------------------------------------------


class EmbeddingRequest(StrictModel):
    """OpenAI ``POST /v1/embeddings`` body."""

    input: str | list[str]
    model: str | None = None
    dimensions: int | None = Field(None, ge=1, description="Matryoshka truncation, then re-normalised.")
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "counterpoint"
    kind: str = "embedding"
    dimensions: int | None = None
    context_length: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# --- collections -----------------------------------------------------------------------------


class ReindexRequest(StrictModel):
    """Re-embed every document of a collection with ``model``, then switch to it atomically."""

    model: str = Field(min_length=1, max_length=500, description="models:/NAME@ALIAS, models:/NAME/N, ...")


class ModelLoad(StrictModel):
    """Load (deploy) a model into the embedding service, e.g. ``models:/scifact-minilm@champion``."""

    model: str = Field(min_length=1, max_length=500)
    kind: Literal["embedding", "reranker"] = Field("embedding", description="Which service loads it.")


class ModelVersionInfo(BaseModel):
    """One version of a registered model, with its run's final metrics."""

    name: str
    version: str
    uri: str
    aliases: list[str] = Field(default_factory=list)
    run_id: str | None = None
    status: str | None = None
    created_at: datetime | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    model_type: str = Field("bi-encoder", description="bi-encoder (embed service) or cross-encoder (rerank).")


class RegisteredModel(BaseModel):
    name: str
    description: str | None = None
    aliases: dict[str, str] = Field(default_factory=dict, description="alias -> version")
    versions: list[ModelVersionInfo] = Field(default_factory=list, description="newest first")


class RegisteredModelList(BaseModel):
    models: list[RegisteredModel]


class AliasUpdate(StrictModel):
    version: str = Field(min_length=1, max_length=20, pattern=r"^[0-9]+$")


class CollectionCreate(StrictModel):
    name: str
    model: str | None = Field(None, description="Embedding model; default: the served default model.")
    distance: Distance = "cosine"
    payload_indexes: dict[str, FieldType] = Field(
        default_factory=dict, description="Metadata fields to index for filtering, with their type."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not COLLECTION_NAME.match(value):
            raise ValueError("name must be 1-63 letters, digits, '_' or '-', starting with a letter or digit")
        return value

    @field_validator("payload_indexes")
    @classmethod
    def _fields(cls, value: dict[str, FieldType]) -> dict[str, FieldType]:
        clash = RESERVED_PAYLOAD_KEYS & value.keys() - {"title"}
        if clash:
            raise ValueError(f"reserved payload keys cannot be indexed: {sorted(clash)}")
        bad = sorted(k for k in value if not PAYLOAD_FIELD.match(k))
        if bad:
            raise ValueError(f"payload index names must be 1-64 ASCII letters, digits, '_' or '-': {bad}")
        return value


class CollectionInfo(BaseModel):
    name: str
    model: str
    dimensions: int
    distance: Distance
    payload_indexes: dict[str, FieldType]
    count: int
    status: str = "ready"
    created_at: datetime | None = None
    previous: list[str] = Field(
        default_factory=list, description="Physical collections kept from before a re-index (deletable)."
    )


class CollectionList(BaseModel):
    collections: list[CollectionInfo]


class Document(StrictModel):
    id: str | int
    text: str
    title: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str | int) -> str:
        value = str(value)
        if not value.strip():
            raise ValueError("document id must not be empty")
        return value

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("document text must not be empty")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = RESERVED_PAYLOAD_KEYS & value.keys()
        if clash:
            raise ValueError(f"metadata may not use reserved keys {sorted(clash)}")
        return value

    def embed_text(self) -> str:
        """What the embedder sees: title and body joined as BEIR evaluations do."""
        from counterpoint.datasets import passage_text

        return passage_text(self.title or "", self.text)

    def payload(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "title": self.title, **self.metadata}


class IngestRequest(StrictModel):
    documents: list[Document] = Field(min_length=1)
    skip_existing: bool = Field(False, description="Skip ids already in the collection (cheap resume).")


class IngestResponse(BaseModel):
    collection: str
    received: int
    indexed: int
    skipped: int
    count: int


# --- search ----------------------------------------------------------------------------------


class Range(StrictModel):
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Range:
        if all(v is None for v in (self.gt, self.gte, self.lt, self.lte)):
            raise ValueError("range needs at least one of gt, gte, lt, lte")
        return self


class MatchAny(StrictModel):
    any: list[str | int | bool] = Field(min_length=1)


class Condition(StrictModel):
    """One condition on a payload field: exactly one of ``match`` or ``range``."""

    key: str
    match: str | int | bool | MatchAny | None = None
    range: Range | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        if (self.match is None) == (self.range is None):
            raise ValueError(f"condition on '{self.key}' needs exactly one of 'match' or 'range'")
        return self


class Filter(StrictModel):
    """Qdrant-style boolean filter over indexed payload fields."""

    must: list[Condition] = Field(default_factory=list)
    should: list[Condition] = Field(default_factory=list)
    must_not: list[Condition] = Field(default_factory=list)

    def keys(self) -> set[str]:
        return {c.key for c in (*self.must, *self.should, *self.must_not)}


class SearchRequest(StrictModel):
    query: str | None = None
    vector: list[float] | None = None
    top_k: int = Field(10, ge=1)
    filter: Filter | None = None
    with_text: bool = True
    rerank: bool = Field(False, description="Rescore the first stage's candidates with the cross-encoder.")
    rerank_top_k: int | None = Field(
        None, ge=1, description="First-stage candidates to rerank (default: the rerank_top_k setting)."
    )
    rerank_model: str | None = Field(None, description="Cross-encoder; default: the served reranker.")
    rerank_fusion: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Weight of the first stage in the final score (z-scored interpolation with the "
        "reranker's, counterpoint.fusion); default: the rerank_fusion setting (0: the reranker alone).",
    )

    @model_validator(mode="after")
    def _query_or_vector(self) -> SearchRequest:
        if (self.query is None) == (self.vector is None):
            raise ValueError("give exactly one of 'query' (text) or 'vector'")
        if self.query is not None and not self.query.strip():
            raise ValueError("query must not be empty")
        if self.rerank and self.query is None:
            raise ValueError("rerank needs a text 'query' (a cross-encoder reads the query)")
        return self


class SearchHit(BaseModel):
    id: str
    score: float = Field(description="The final ranking's score: the reranker's when reranked.")
    title: str | None = None
    text: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    first_stage_score: float | None = Field(None, description="Vector similarity, when reranked.")
    first_stage_rank: int | None = Field(None, description="1-based rank before reranking.")


class SearchResponse(BaseModel):
    collection: str
    hits: list[SearchHit]
    took_ms: float
    timings: dict[str, float] = Field(
        default_factory=dict, description="Milliseconds per stage: embed, search, rerank."
    )
    reranked_by: str | None = None


# --- reranking --------------------------------------------------------------------------------


class RerankDocument(StrictModel):
    text: str


class RerankRequest(StrictModel):
    """Cohere/TEI-style rerank: ``documents`` (strings or ``{"text"}``) or TEI's ``texts``."""

    model: str | None = None
    query: str
    documents: list[str | RerankDocument] | None = None
    texts: list[str] | None = None
    top_n: int | None = Field(None, ge=1, description="Return only the best n (default: all).")
    return_documents: bool = False

    @model_validator(mode="after")
    def _one_list(self) -> RerankRequest:
        if not self.query.strip():
            raise ValueError("query must not be empty")
        if (self.documents is None) == (self.texts is None):
            raise ValueError("give exactly one of 'documents' or 'texts'")
        if not self.items():
            raise ValueError("documents must not be empty: give at least one document to rerank")
        for i, text in enumerate(self.items()):
            if not text.strip():
                raise ValueError(f"document {i} is empty")
        return self

    def items(self) -> list[str]:
        docs = self.documents if self.documents is not None else self.texts or []
        return [d.text if isinstance(d, RerankDocument) else d for d in docs]


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: RerankDocument | None = None
    truncated: bool = Field(False, description="The pair was cut to the reranker's token limit.")


class RerankResponse(BaseModel):
    model: str
    results: list[RerankResult]
    usage: Usage
    truncated: int = Field(0, description="How many pairs were cut to the token limit.")
    warnings: list[str] = Field(default_factory=list)


# --- health ----------------------------------------------------------------------------------


class ComponentHealth(BaseModel):
    status: Literal["ok", "degraded", "down"]
    detail: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"]
    components: dict[str, ComponentHealth]


# --- training jobs ---------------------------------------------------------------------------


class JobCreate(StrictModel):
    """A training job: the config as a mapping, or as YAML/JSON text."""

    config: dict[str, Any] | str
    kind: Literal["train-biencoder"] = "train-biencoder"


class JobInfo(BaseModel):
    id: str
    name: str
    kind: str
    status: Literal["pending", "running", "succeeded", "failed", "cancelled"]
    config: dict[str, Any]
    ray_job_id: str | None = None
    mlflow_run_id: str | None = None
    error: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


class JobList(BaseModel):
    jobs: list[JobInfo]


class JobLogs(BaseModel):
    id: str
    logs: str


class KeyCreate(StrictModel):
    name: str = Field(..., min_length=1, max_length=255, description="Who or what uses the key.")
    scopes: list[str] = Field(
        ..., min_length=1, description="read, write, train, admin (admin may call every route)."
    )


class KeyInfo(BaseModel):
    id: str
    name: str
    prefix: str = Field(..., description="Identifies the key in lists and logs; not a secret.")
    scopes: list[str]
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    @classmethod
    def from_record(cls, record: object) -> KeyInfo:
        """From the registry's key record (its hash is not a field here, so it never leaves)."""
        return cls.model_validate(record, from_attributes=True)


class KeyCreated(KeyInfo):
    key: str = Field(..., description="The API key itself: shown once, stored only as a hash.")


class KeyList(BaseModel):
    keys: list[KeyInfo]


# --- text generation -------------------------------------------------------------------------
# OpenAI's completions and chat completions, plus the decoding options of GenerationParams
# (decoding, penalty_alpha, top_k, cd_alpha, amateur_layers, amateur_temperature, ...).

FinishReason = Literal["stop", "length"]
FinishDetail = Literal["eos", "stop", "length"]


class StreamOptions(StrictModel):
    include_usage: bool = Field(False, description="Send a last chunk with the token usage (choices empty).")


class GenerationRequest(GenerationParams):
    """What both generation routes accept: the decoding options plus OpenAI's request fields."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Served causal LM; default: the one served.")
    max_tokens: int | None = Field(  # type: ignore[assignment]
        None, ge=1, description="Most new tokens (default 128); above the gateway's max_tokens_limit: 413."
    )
    stream: bool = Field(False, description="Answer with server-sent events, OpenAI's chunk format.")
    stream_options: StreamOptions | None = None
    n: int = Field(1, description="Choices per request; only 1 is supported.")
    user: str | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError("only n=1 is supported (one choice per request)")
        return value

    @model_validator(mode="after")
    def _method_options(self) -> GenerationRequest:
        if self.decoding == "contrastive_search" and self.top_k is not None and self.top_k > MAX_CS_TOP_K:
            raise ValueError(
                f"contrastive_search takes at most top_k={MAX_CS_TOP_K} candidates, got {self.top_k}"
            )
        return self

    def generation_params(self, max_tokens: int) -> GenerationParams:
        """The library's options, with ``max_tokens`` resolved by the gateway."""
        values = {name: getattr(self, name) for name in GenerationParams.model_fields}
        values["max_tokens"] = max_tokens
        return GenerationParams(**values)


class CompletionRequest(GenerationRequest):
    """OpenAI ``POST /v1/completions``: continue a raw text prompt."""

    prompt: str

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must not be empty")
        return value


class ChatMessage(StrictModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionRequest(GenerationRequest):
    """OpenAI ``POST /v1/chat/completions``: messages rendered with the model's chat template."""

    messages: list[ChatMessage] = Field(min_length=1)

    @field_validator("messages")
    @classmethod
    def _messages(cls, value: list[ChatMessage]) -> list[ChatMessage]:
        if not any(m.content.strip() for m in value):
            raise ValueError("messages must contain some text")
        return value


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: FinishReason = Field(
        description="OpenAI's: 'stop' (end of sequence or stop string) or 'length'."
    )
    finish_detail: FinishDetail = Field(
        description="'eos' (end-of-sequence token), 'stop' (stop string) or 'length'."
    )
    logprobs: None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    decoding: str
    choices: list[CompletionChoice]
    usage: CompletionUsage

    @property
    def text(self) -> str:
        return self.choices[0].text

    @property
    def finish_reason(self) -> str:
        return self.choices[0].finish_reason


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessage
    finish_reason: FinishReason
    finish_detail: FinishDetail


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    decoding: str
    choices: list[ChatChoice]
    usage: CompletionUsage

    @property
    def text(self) -> str:
        return self.choices[0].message.content

    @property
    def finish_reason(self) -> str:
        return self.choices[0].finish_reason


class CompletionChunkChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: FinishReason | None = None
    finish_detail: FinishDetail | None = None
    logprobs: None = None


class CompletionChunk(BaseModel):
    """One server-sent event of a streamed completion (``data: {...}``)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChunkChoice]
    usage: CompletionUsage | None = None


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: ChatDelta
    finish_reason: FinishReason | None = None
    finish_detail: FinishDetail | None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed chat completion (``data: {...}``)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: CompletionUsage | None = None


# --- backups ---------------------------------------------------------------------------------


class CollectionRestored(BaseModel):
    """What ``POST /v1/backups/collections`` restored, and from which backup."""

    collection: CollectionInfo
    source: str = Field(description="The collection's name in the backup.")
    backed_up_at: datetime
    points: int = Field(description="Points restored (the backup's count).")
    snapshot_format: str = Field(description="edge-shard or qdrant-snapshot.")
    replaced: bool = Field(description="An existing collection of that name was overwritten (replace).")


class RegistryDump(BaseModel):
    """Every row of every registry table (``GET /v1/backups/registry``); load it with ``counterpoint restore
    registry`` into an empty SQLite or PostgreSQL database."""

    format: Literal["counterpoint-registry-dump"] = "counterpoint-registry-dump"
    format_version: int
    schema_revision: str
    created_at: datetime
    counterpoint_version: str
    source_dialect: str
    tables: dict[str, list[dict[str, Any]]]
