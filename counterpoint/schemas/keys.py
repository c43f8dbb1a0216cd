"""API keys: creating one (the key is returned once), listing and revoking them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from counterpoint.schemas.base import StrictModel


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
