"""The registry repository: every read and write of the registry database goes through here.

Methods open a short transaction each and return frozen records (plain dataclasses), never
ORM rows, so no session or lazy load leaks to callers and records can cross threads and
Ray processes freely. Missing rows raise ``NotFound``; duplicate names raise ``Conflict``.

One module per table: ``collections``, ``jobs``, ``registered_models``, ``api_keys``; ``base``
holds the transaction and row helpers they share, ``records`` what they return.
:class:`Registry` is all four. May import ``counterpoint.infra.db`` (engine, models) and the
counterpoint base (errors, settings); nothing above infra.
"""

from __future__ import annotations

from counterpoint.infra.db.registry.api_keys import ApiKeysTable
from counterpoint.infra.db.registry.base import UNSET
from counterpoint.infra.db.registry.collections import CollectionsTable
from counterpoint.infra.db.registry.jobs import JobsTable
from counterpoint.infra.db.registry.records import ApiKeyRecord, CollectionRecord, JobRecord, ModelRecord
from counterpoint.infra.db.registry.registered_models import ModelsTable


class Registry(CollectionsTable, JobsTable, ModelsTable, ApiKeysTable):
    """Collections, jobs, models and API keys, stored in SQLite or PostgreSQL."""


__all__ = ["UNSET", "ApiKeyRecord", "CollectionRecord", "JobRecord", "ModelRecord", "Registry"]
