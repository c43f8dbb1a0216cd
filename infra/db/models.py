"""Tables of the registry database: collections (and the writes mirrored during a re-index), jobs,
models and API keys.

Only portable column types are used (strings, integers, JSON, timestamps with time zone) so
the same models and migrations run on SQLite (local, single host) and PostgreSQL (cluster).
Every timestamp is stored and returned as a timezone-aware UTC ``datetime``.

Any change here needs a new Alembic revision in ``migrations/versions``; a test compares the
migrated schema with these models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names: Alembic needs names to alter or drop constraints later,
# and SQLite's batch mode needs them to recreate tables.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

COLLECTION_STATUSES = ("indexing", "ready", "failed", "reindexing")
JOB_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
JOB_TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
MODEL_KINDS = ("embedding", "cross-encoder", "causal-lm")


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (column defaults)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always hands back aware UTC datetimes.

    SQLite has no time zone support and returns naive values; PostgreSQL returns values in
    the session's time zone. Both are normalised to UTC; naive input is refused so a local
    time can never be stored by mistake.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: registry timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        # SQLite stores the text as given; keep it offset-free so values sort and compare as text.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the naming convention and the type map of the registry."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        dict[str, str]: JSON(),
        list[str]: JSON(),
    }


class CollectionRow(Base):
    """A user-facing collection and the vector-store collection that holds its points.

    ``physical_name`` is what the vector store knows; re-indexing builds a new physical
    collection and swaps this column in one update, so searches never see a half-built one.
    While it builds, ``mirror_physical`` / ``mirror_model`` name it, so every gateway replica sends
    its writes there too (read from the row each write already locks).
    """

    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    physical_name: Mapped[str] = mapped_column(String(255))
    model: Mapped[str] = mapped_column(String(255))
    dimensions: Mapped[int] = mapped_column(Integer)
    distance: Mapped[str] = mapped_column(String(32))
    payload_indexes: Mapped[dict[str, str]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(32), default="ready")
    mirror_physical: Mapped[str | None] = mapped_column(String(255))
    mirror_model: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MirroredWriteRow(Base):
    """An id written to a collection being re-indexed, through any gateway replica.

    The re-index's copy from the old collection skips these ids: the mirror wrote a newer version.
    Keyed by the physical collection being built; its rows go when the re-index ends.
    """

    __tablename__ = "mirrored_writes"
    __table_args__ = (UniqueConstraint("physical_name", "point_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    physical_name: Mapped[str] = mapped_column(String(255))
    point_id: Mapped[str] = mapped_column(String(255))


class JobRow(Base):
    """A training or indexing job; Ray runs it, MLflow records it, this row tracks it."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True, default="pending")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ray_job_id: Mapped[str | None] = mapped_column(String(255))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(index=True, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ModelRow(Base):
    """A model the platform can serve: a local path or an MLflow model URI."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    uri: Mapped[str] = mapped_column(String(1024))
    kind: Mapped[str] = mapped_column(String(32), default="embedding")
    dimensions: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKeyRow(Base):
    """An API key: its display prefix (unique, used for look-up) and the hash of the secret."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    prefix: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
