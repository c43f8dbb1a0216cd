"""The registry database: which collections, jobs, models and API keys exist.

SQLite in local mode, PostgreSQL in a cluster; one schema, kept by the Alembic migrations in
``migrations/`` and applied at start-up (``Registry.from_url`` or ``migrate``).

Modules: ``models`` (the tables), ``engine`` (engines, sessions, migrations), ``registry/`` (the
``Registry`` repository, one module per table), ``dump`` (portable registry dumps). May import
the counterpoint base (errors, settings) only; nothing above infra.
"""

from __future__ import annotations

from .engine import make_engine, make_session_factory, migrate, normalize_url
from .registry import (
    UNSET,
    ApiKeyRecord,
    CollectionRecord,
    JobRecord,
    ModelRecord,
    Registry,
)

__all__ = [
    "UNSET",
    "ApiKeyRecord",
    "CollectionRecord",
    "JobRecord",
    "ModelRecord",
    "Registry",
    "make_engine",
    "make_session_factory",
    "migrate",
    "normalize_url",
]
