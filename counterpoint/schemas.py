"""Request and response bodies of the HTTP API, shared by the gateway and the SDK.

The embeddings shapes follow OpenAI's API so existing clients work unchanged; collection
and search shapes follow Qdrant's vocabulary (match, range, must/should/must_not).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,62}$")
RESERVED_PAYLOAD_KEYS = frozenset({"id", "text", "title"})

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


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# --- collections -----------------------------------------------------------------------------


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

    @model_validator(mode="after")
    def _query_or_vector(self) -> SearchRequest:
        if (self.query is None) == (self.vector is None):
            raise ValueError("give exactly one of 'query' (text) or 'vector'")
        if self.query is not None and not self.query.strip():
            raise ValueError("query must not be empty")
        return self


class SearchHit(BaseModel):
    id: str
    score: float
    title: str | None = None
    text: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class SearchResponse(BaseModel):
    collection: str
    hits: list[SearchHit]
    took_ms: float


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
