"""Collections and their documents: create, describe, ingest, re-index (Qdrant's vocabulary)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from counterpoint.schemas.base import StrictModel, not_blank

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,62}$")
RESERVED_PAYLOAD_KEYS = frozenset({"id", "text", "title"})
# Indexed metadata field names: what both vector engines accept as a (one-level) field path.
PAYLOAD_FIELD = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

Distance = Literal["cosine", "dot", "euclid"]
FieldType = Literal["keyword", "integer", "float", "bool"]


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
        return not_blank(str(value), "document id")

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return not_blank(value, "document text")

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


class ReindexRequest(StrictModel):
    """Re-embed every document of a collection with ``model``, then switch to it atomically."""

    model: str = Field(min_length=1, max_length=500, description="models:/NAME@ALIAS, models:/NAME/N, ...")
