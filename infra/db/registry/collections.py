"""The registry's collections table: create, read, delete, status, and re-pointing a name.

A collection's ``name`` is what users see; its ``physical_name`` the vector-store collection
behind it. Re-indexes and restores build a new physical collection, then re-point the name
in one compare-and-swap update (:meth:`CollectionsTable.switch_model`, ``replace_collection``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from counterpoint.errors import Conflict
from counterpoint.infra.db.models import COLLECTION_STATUSES, CollectionRow, utcnow
from counterpoint.infra.db.registry.base import RegistryBase, check_choice
from counterpoint.infra.db.registry.records import CollectionRecord, to_record

_collection = partial(to_record, CollectionRecord)


class CollectionsTable(RegistryBase):
    """The collections part of :class:`~counterpoint.infra.db.registry.Registry`."""

    def create_collection(
        self,
        name: str,
        *,
        model: str,
        dimensions: int,
        distance: str = "cosine",
        payload_indexes: Mapping[str, str] | None = None,
        physical_name: str | None = None,
        status: str = "ready",
    ) -> CollectionRecord:
        """Register a collection; ``physical_name`` defaults to ``name``. Raises ``Conflict``."""
        check_choice("collection status", status, COLLECTION_STATUSES)
        row = CollectionRow(
            name=name,
            physical_name=physical_name or name,
            model=model,
            dimensions=dimensions,
            distance=distance,
            payload_indexes=dict(payload_indexes or {}),
            status=status,
        )
        taken = select(CollectionRow.id).where(CollectionRow.name == name)
        return self._insert(row, _collection, f"collection {name!r} already exists", taken)

    def get_collection(self, name: str) -> CollectionRecord:
        query = select(CollectionRow).where(CollectionRow.name == name)
        return self._get(query, _collection, f"collection {name!r} does not exist")

    def list_collections(self) -> list[CollectionRecord]:
        return self._list(select(CollectionRow).order_by(CollectionRow.name), _collection)

    def delete_collection(self, name: str) -> CollectionRecord:
        """Remove the entry and return it (its ``physical_name`` tells what to drop)."""
        with self._tx(write=True) as session:
            row = self._collection_row(session, name)
            record = _collection(row)
            session.delete(row)
            return record

    def set_collection_status(self, name: str, status: str) -> CollectionRecord:
        check_choice("collection status", status, COLLECTION_STATUSES)
        with self._tx(write=True) as session:
            row = self._collection_row(session, name, for_update=True)
            row.status = status
            session.flush()
            return _collection(row)

    def swap_physical(self, name: str, new_physical: str, *, expected: str | None = None) -> str:
        """Point ``name`` at ``new_physical`` in one update; return the previous physical name.

        With ``expected``, the swap happens only if the current physical name is still
        ``expected`` (compare-and-swap), otherwise ``Conflict``: two re-indexes racing
        cannot silently overwrite each other.
        """
        with self._tx(write=True) as session:  # row locked: FOR UPDATE / SQLite write lock
            row = self._collection_row(session, name, for_update=True)
            old = row.physical_name
            if expected is not None and old != expected:
                raise Conflict(f"collection {name!r} points at {old!r}, not {expected!r}; not swapped")
            row.physical_name = new_physical
            row.updated_at = utcnow()
            session.flush()
            return old

    def switch_model(
        self, name: str, *, physical_name: str, model: str, dimensions: int, expected: str
    ) -> str:
        """The end of a re-index: point ``name`` at its new physical collection, model and size, and
        mark it ready, in one update; returns the previous physical name. ``Conflict`` unless the
        collection still points at ``expected`` (nothing else swapped it meanwhile)."""
        return self._repoint(
            name, expected, "swapped", physical_name=physical_name, model=model, dimensions=dimensions
        )

    def replace_collection(
        self,
        name: str,
        *,
        physical_name: str,
        model: str,
        dimensions: int,
        distance: str,
        payload_indexes: Mapping[str, str],
        expected: str,
    ) -> str:
        """The end of a restore over an existing collection: every field from the backup, status ready,
        in one update; returns the previous physical name. ``Conflict`` unless it still points at
        ``expected``."""
        return self._repoint(
            name,
            expected,
            "replaced",
            physical_name=physical_name,
            model=model,
            dimensions=dimensions,
            distance=distance,
            payload_indexes=dict(payload_indexes),
        )

    def _repoint(self, name: str, expected: str, action: str, **fields: Any) -> str:
        """Set ``fields`` and status ready in one update if ``name`` still points at ``expected``
        (compare-and-swap on the physical name); returns the previous physical name."""
        with self._tx(write=True) as session:
            row = self._collection_row(session, name, for_update=True)
            old = row.physical_name
            if old != expected:
                raise Conflict(f"collection {name!r} points at {old!r}, not {expected!r}; not {action}")
            for field_name, value in fields.items():
                setattr(row, field_name, value)
            row.status = "ready"
            row.updated_at = utcnow()
            session.flush()
            return old

    def _collection_row(self, session: Session, name: str, *, for_update: bool = False) -> CollectionRow:
        query = select(CollectionRow).where(CollectionRow.name == name)
        return self._one(session, query, f"collection {name!r} does not exist", for_update=for_update)
