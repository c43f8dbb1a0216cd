"""Bulk upload of precomputed vectors: ``POST /v1/collections/{name}/vectors``.

Vectors made elsewhere (another pipeline, another team's model) go into a collection without being
embedded again. They travel as JSON lists or, compactly, as base64 of little-endian float32 rows
(``vectors_b64``: 4 bytes per number instead of ~20 in JSON), or, fastest, as raw float32 after a
JSON header line (``POST .../vectors/binary``, what the SDK sends: no base64 to decode). Each point may carry the same fields
as a document (text, title, metadata), so search hits, filters and backups treat it like one. The
answer is an `IngestResponse`, as for documents.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, field_validator, model_validator

from counterpoint.schemas.base import StrictModel, not_blank
from counterpoint.schemas.collections import check_reserved


class VectorPayload(StrictModel):
    """What a point keeps besides its vector: a document's fields, each optional."""

    text: str | None = None
    title: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_reserved(value)


class VectorUploadHeader(StrictModel):
    """A batch's points without their vectors: the header line of a binary upload (``.../vectors/binary``)."""

    ids: list[str | int] = Field(min_length=1, description="Point ids, unique within the batch.")
    payloads: list[VectorPayload] | None = Field(
        None, description="One {text?, title?, metadata?} per id; default none (vector and id only)."
    )
    skip_existing: bool = Field(False, description="Skip ids already in the collection (cheap resume).")

    @field_validator("ids")
    @classmethod
    def _ids(cls, value: list[str | int]) -> list[str | int]:
        ids: list[str | int] = [item if isinstance(item, str) else str(item) for item in value]
        if not all(map(str.strip, ids)):  # type: ignore[arg-type]
            blank = next(i for i, item in enumerate(ids) if not str(item).strip())
            not_blank(str(ids[blank]), f"ids[{blank}]")
        return ids

    @model_validator(mode="after")
    def _payload_count(self) -> Self:
        if self.payloads is not None and len(self.payloads) != len(self.ids):
            raise ValueError(f"{len(self.payloads)} payloads for {len(self.ids)} ids: send one per id")
        return self

    def id_list(self) -> list[str]:
        """The ids as strings (the validator made them so; integers are accepted like a document's)."""
        return [str(i) for i in self.ids]


class VectorUploadRequest(VectorUploadHeader):
    """One batch of points: ``ids[i]`` gets row i of the vectors and ``payloads[i]``; all or nothing."""

    vectors: list[list[float]] | None = Field(
        None, description="One vector per id, as JSON numbers (or use vectors_b64)."
    )
    vectors_b64: str | None = Field(
        None,
        description="base64 of len(ids) x dims little-endian float32 numbers, row-major "
        "(numpy: base64.b64encode(matrix.astype('<f4').tobytes())).",
    )

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if (self.vectors is None) == (self.vectors_b64 is None):
            raise ValueError("send the vectors as exactly one of 'vectors' or 'vectors_b64'")
        if self.vectors is not None and len(self.vectors) != len(self.ids):
            raise ValueError(f"{len(self.vectors)} vectors for {len(self.ids)} ids: send one vector per id")
        return self
