"""Collections and their documents: create, describe, ingest, re-index (Qdrant's vocabulary)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from counterpoint.schemas.base import StrictModel, not_blank

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,62}$")
RESERVED_PAYLOAD_KEYS = frozenset({"id", "text", "title"})
# Indexed metadata field names: what both vector engines accept as a (one-level) field path.
PAYLOAD_FIELD = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

Distance = Literal["cosine", "dot", "euclid"]
FieldType = Literal["keyword", "integer", "float", "bool"]
VectorDatatype = Literal["float32", "float16"]
"""How a collection stores its full vectors: float32 reads back exactly what was written; float16
takes half the memory and disk (~3 significant digits: recall@10 unchanged on 384-d embeddings)."""
IndexState = Literal["indexing", "ready"]
INDEX_BOUNDS: dict[str, tuple[float, float]] = {
    "m": (2, 128),
    "ef_construct": (4, 4096),
    "hnsw_ef": (1, 32768),
    "oversampling": (1.0, 16.0),
}
"""Accepted ranges of the numeric index settings (the vector stores check the same)."""


_FIELD_CHECKS: dict[str, tuple[type, ...]] = {
    "keyword": (str,),
    "integer": (int,),
    "float": (int, float),
    "bool": (bool,),
}


def _matches_type(value: Any, kind: FieldType) -> bool:
    if kind in ("integer", "float") and isinstance(value, bool):
        return False
    values = value if isinstance(value, list) else [value]
    return all(isinstance(v, _FIELD_CHECKS[kind]) for v in values)


def metadata_mismatch(metadata: Mapping[str, Any], indexes: Mapping[str, FieldType]) -> str | None:
    """Why ``metadata`` does not fit a collection's ``payload_indexes`` (``metadata 'year' must be
    integer, got 'x'``), or None. Shared by document ingest, vector upload and the SDK's file checks,
    so a value the index would mis-store is refused the same way everywhere."""
    for key, kind in indexes.items():
        value = metadata.get(key)
        if value is not None and not _matches_type(value, kind):
            return f"metadata '{key}' must be {kind}, got {value!r}"
    return None


def check_reserved(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata``, unless it uses a key the payload reserves (id, text, title): then a ValueError."""
    clash = RESERVED_PAYLOAD_KEYS & metadata.keys()
    if clash:
        raise ValueError(f"metadata may not use reserved keys {sorted(clash)}")
    return metadata


def _bounded(key: str, description: str) -> Any:
    low, high = INDEX_BOUNDS[key]
    return Field(None, ge=low, le=high, description=description)


class SearchSettingsUpdate(StrictModel):
    """New search-time settings of an existing collection (the graph stays as built); unset: kept."""

    hnsw_ef: int | None = _bounded(
        "hnsw_ef", "Candidates a search explores, e.g. what check-recall suggests."
    )
    oversampling: float | None = _bounded("oversampling", "Rescored candidates per result with quantization.")

    @model_validator(mode="after")
    def _something(self) -> SearchSettingsUpdate:
        if self.hnsw_ef is None and self.oversampling is None:
            raise ValueError("set hnsw_ef and/or oversampling")
        return self


class IndexConfig(StrictModel):
    """A collection's HNSW and storage settings, fixed at creation; null means the platform default."""

    m: int | None = _bounded("m", "Graph links per point (default 16): more, better recall and more memory.")
    ef_construct: int | None = _bounded(
        "ef_construct",
        "Candidates kept while building the graph (default 128): more, a better graph, slower build.",
    )
    hnsw_ef: int | None = _bounded(
        "hnsw_ef",
        "Candidates a search explores (default 128): more, better recall, slower search. "
        "`check-recall` suggests one; `PATCH /v1/collections/{name}/index` changes it later.",
    )
    quantization: bool | None = Field(
        None,
        description="Keep an int8 copy of the vectors in RAM, search with it and rescore the best "
        "oversampling x top_k with the full vectors (default on: the graph builds ~10x faster).",
    )
    oversampling: float | None = _bounded(
        "oversampling", "Rescored candidates per result with quantization (default 2)."
    )
    on_disk: bool | None = Field(
        None,
        description="Leave the full vectors on disk (memory-mapped) instead of in RAM (default: on disk "
        "when quantization is on and they are float32, since searches then read them only to rescore; "
        "in RAM otherwise).",
    )
    datatype: VectorDatatype | None = Field(
        None,
        description="How the full vectors are stored (default float32: read back exactly as written). "
        "float16 halves their memory and disk, keeps recall (0.999 at 200k), and with on_disk unset "
        "keeps them in RAM: fast rescoring from the first search, vectors read back rounded to float16.",
    )


class Bm25Config(StrictModel):
    """BM25's parameters for a collection's lexical vectors, fixed at creation."""

    k: float = Field(1.2, ge=0, le=10, description="Term-frequency saturation (k1).")
    b: float = Field(0.75, ge=0, le=1, description="Length normalisation: 0 none, 1 full.")
    avg_len: float = Field(
        256.0, gt=0, le=100_000, description="Average document length in tokens that lengths are compared to."
    )


Lexical = Literal["bm25"]


class CollectionCreate(StrictModel):
    name: str
    model: str | None = Field(None, description="Embedding model; default: the served default model.")
    distance: Distance = "cosine"
    payload_indexes: dict[str, FieldType] = Field(
        default_factory=dict, description="Metadata fields to index for filtering, with their type."
    )
    index: IndexConfig = Field(default_factory=IndexConfig, description="HNSW and storage settings.")
    lexical: Lexical | None = Field(
        "bm25",
        description="Sparse lexical vectors beside the dense ones, for lexical and hybrid search "
        "(BM25 over each document's title and text); null: dense only.",
    )
    bm25: Bm25Config = Field(default_factory=Bm25Config, description="BM25's parameters (with lexical).")

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
    index: IndexConfig = Field(default_factory=IndexConfig, description="The settings it was created with.")
    index_status: IndexState = Field(
        "ready", description="'indexing' while its HNSW graph is being built or is due, else 'ready'."
    )
    indexed_points: int = Field(0, description="Points in the HNSW graph (the rest are searched exactly).")
    lexical: Lexical | None = Field(
        None, description="'bm25': it has lexical vectors (lexical, hybrid search)."
    )
    bm25: Bm25Config | None = Field(None, description="BM25's parameters, with lexical.")


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
        return not_blank(str(value), "document id")

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return not_blank(value, "document text")

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_reserved(value)

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


class RecallCheckRequest(StrictModel):
    """Sample ``samples`` stored vectors as queries and compare approximate with exact top ``top_k``."""

    samples: int = Field(100, ge=1, le=1000, description="Stored vectors used as queries.")
    top_k: int = Field(10, ge=1, le=100, description="Results compared per query (recall@top_k).")


class RecallStep(BaseModel):
    hnsw_ef: int | None = Field(description="Search ef tried; null: the collection's own setting.")
    recall: float
    p50_ms: float = Field(description="Median search latency in the vector store, in ms.")


class RecallReport(BaseModel):
    collection: str
    samples: int
    top_k: int
    recall: float = Field(description="recall@top_k with the collection's current settings.")
    p50_ms: float
    exact_p50_ms: float = Field(description="Median latency of an exact (every point) search.")
    hnsw_ef: int | None = Field(description="The collection's search ef; null: the default.")
    ladder: list[RecallStep]
    target: float
    suggested_hnsw_ef: int | None = Field(
        description="Smallest ef of the ladder reaching target; null: none did."
    )
    points: int
    indexed_points: int


class ReindexRequest(StrictModel):
    """Re-embed every document of a collection with ``model``, then switch to it atomically; with
    ``lexical`` the new copy also gets BM25 vectors (computed from each document's title and text)."""

    model: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="models:/NAME@ALIAS, models:/NAME/N, ...; default: the collection's current model.",
    )
    lexical: Lexical | None = Field(
        None, description="'bm25': add BM25 vectors (lexical and hybrid search); null: keep as it is."
    )
