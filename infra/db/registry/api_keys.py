"""The registry's API keys table: keys stored hashed (the caller hashes), found by prefix, revoked."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import partial

from sqlalchemy import func, select

from counterpoint.infra.db.models import ApiKeyRow, utcnow
from counterpoint.infra.db.registry.base import RegistryBase
from counterpoint.infra.db.registry.records import ApiKeyRecord, to_record

_api_key = partial(to_record, ApiKeyRecord)


class ApiKeysTable(RegistryBase):
    """The API keys part of :class:`~counterpoint.infra.db.registry.Registry`."""

    def create_api_key(
        self, name: str, *, prefix: str, key_hash: str, scopes: Sequence[str] = ()
    ) -> ApiKeyRecord:
        """Store a key as given (the caller hashes the secret). ``prefix`` must be unique."""
        row = ApiKeyRow(
            id=str(uuid.uuid4()), name=name, prefix=prefix, key_hash=key_hash, scopes=list(scopes)
        )
        taken = select(ApiKeyRow.id).where(ApiKeyRow.prefix == prefix)
        return self._insert(row, _api_key, f"an API key with prefix {prefix!r} already exists", taken)

    def get_api_key_by_prefix(self, prefix: str) -> ApiKeyRecord:
        """The key with this prefix, revoked or not (check ``active``)."""
        query = select(ApiKeyRow).where(ApiKeyRow.prefix == prefix)
        return self._get(query, _api_key, f"no API key with prefix {prefix!r}")

    def list_api_keys(self, *, include_revoked: bool = True) -> list[ApiKeyRecord]:
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if not include_revoked:
            query = query.where(ApiKeyRow.revoked_at.is_(None))
        return self._list(query, _api_key)

    def revoked_api_key_count(self) -> int:
        """How many keys were ever revoked: a cheap version number of revocations (it only grows)."""
        query = select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_not(None))
        with self._tx() as session:
            return int(session.execute(query).scalar_one())

    def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        """Mark the key revoked; revoking twice keeps the first revocation time."""
        with self._tx(write=True) as session:
            query = select(ApiKeyRow).where(ApiKeyRow.id == key_id)
            row = self._one(session, query, f"API key {key_id!r} does not exist", for_update=True)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                session.flush()
            return _api_key(row)
