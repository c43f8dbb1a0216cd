"""The registry's collections table: create, read, delete, status, and re-pointing a name.

A collection's ``name`` is what users see; its ``physical_name`` the vector-store collection
behind it. Re-indexes and restores build a new physical collection, then re-point the name
in one compare-and-swap update (:meth:`CollectionsTable.switch_model`, ``replace_collection``).

While a re-index builds, the row names the new collection (``mirror_physical``) and the
``mirrored_writes`` table the ids written to it meanwhile. Every write to a collection's vectors
runs under the row's lock (:meth:`CollectionsTable.locked`), so gateway replicas and the re-index's
copy agree on where each write goes and which copy is newer, whichever replica they run on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from counterpoint.errors import Conflict
from counterpoint.infra.db.models import COLLECTION_STATUSES, CollectionRow, MirroredWriteRow, utcnow
from counterpoint.infra.db.registry.base import RegistryBase, check_choice
from counterpoint.infra.db.registry.records import CollectionRecord, to_record

_collection = partial(to_record, CollectionRecord)


class LockedCollection:
    """A collection's row held under its write lock (see :meth:`CollectionsTable.locked`)."""

    def __init__(self, session: Session, row: CollectionRow) -> None:
        self._session = session
        self.record = _collection(row)

    def mirrored(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` were written to the re-index's new collection by the mirror."""
        physical = self.record.mirror_physical
        wanted = list(ids)
        if physical is None or not wanted:
            return set()
        query = select(MirroredWriteRow.point_id).where(
            MirroredWriteRow.physical_name == physical, MirroredWriteRow.point_id.in_(wanted)
        )
        return set(self._session.scalars(query))

    def mark_mirrored(self, ids: Iterable[str]) -> None:
        """Record that the mirror wrote ``ids`` to the new collection (the copy must keep them)."""
        physical = self.record.mirror_physical
        assert physical is not None, "only a collection being re-indexed has a mirror"
        wanted = set(ids)
        new = wanted - self.mirrored(wanted)
        self._session.add_all(MirroredWriteRow(physical_name=physical, point_id=i) for i in sorted(new))
        self._session.flush()


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

    @contextmanager
    def locked(self, name: str) -> Iterator[LockedCollection]:
        """Hold ``name``'s row locked (``FOR UPDATE``; SQLite's write lock) for the block.

        Writes to the collection's vectors run inside, so a re-index cannot start, copy a page or
        switch between a writer's look at the row and its write.
        """
        with self._tx(write=True) as session:
            yield LockedCollection(session, self._collection_row(session, name, for_update=True))

    def start_mirror(self, name: str, *, physical_name: str, model: str) -> CollectionRecord:
        """The start of a re-index: writes to ``name`` go to ``physical_name`` too (embedded with
        ``model``) until :meth:`switch_model` or :meth:`end_mirror`; ``Conflict`` if one runs."""
        with self._tx(write=True) as session:
            row = self._collection_row(session, name, for_update=True)
            if row.mirror_physical is not None or row.status == "reindexing":
                raise Conflict(f"collection '{name}' is already being re-indexed")
            row.mirror_physical, row.mirror_model, row.status = physical_name, model, "reindexing"
            session.flush()
            return _collection(row)

    def end_mirror(self, name: str, physical_name: str) -> None:
        """An abandoned re-index: stop mirroring to ``physical_name``, mark ``name`` ready again."""
        with self._tx(write=True) as session:
            session.execute(delete(MirroredWriteRow).where(MirroredWriteRow.physical_name == physical_name))
            row = session.scalar(select(CollectionRow).where(CollectionRow.name == name).with_for_update())
            if row is None:
                return  # deleted meanwhile
            if row.mirror_physical == physical_name:
                row.mirror_physical = row.mirror_model = None
            if row.mirror_physical is None and row.status == "reindexing":
                row.status = "ready"

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
        mark it ready and stop the mirror, in one update; returns the previous physical name.
        ``Conflict`` unless the collection still points at ``expected`` (nothing else swapped it
        meanwhile) and still mirrors to ``physical_name`` (the re-index was not abandoned)."""
        return self._repoint(
            name,
            expected,
            "swapped",
            mirror=physical_name,
            physical_name=physical_name,
            model=model,
            dimensions=dimensions,
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
        ``expected`` and is not being re-indexed."""
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

    def _repoint(
        self, name: str, expected: str, action: str, *, mirror: str | None = None, **fields: Any
    ) -> str:
        """Set ``fields`` and status ready in one update if ``name`` still points at ``expected``
        (compare-and-swap on the physical name) and mirrors to ``mirror`` (None: is not being
        re-indexed); the mirror ends. Returns the previous physical name."""
        with self._tx(write=True) as session:
            row = self._collection_row(session, name, for_update=True)
            old = row.physical_name
            if old != expected:
                raise Conflict(f"collection {name!r} points at {old!r}, not {expected!r}; not {action}")
            if row.mirror_physical != mirror:
                now = "is being re-indexed" if row.mirror_physical else "is no longer being re-indexed"
                raise Conflict(f"collection {name!r} {now}; not {action}")
            if mirror is not None:
                session.execute(delete(MirroredWriteRow).where(MirroredWriteRow.physical_name == mirror))
            for field_name, value in fields.items():
                setattr(row, field_name, value)
            row.mirror_physical = row.mirror_model = None
            row.status = "ready"
            row.updated_at = utcnow()
            session.flush()
            return old

    def _collection_row(self, session: Session, name: str, *, for_update: bool = False) -> CollectionRow:
        query = select(CollectionRow).where(CollectionRow.name == name)
        return self._one(session, query, f"collection {name!r} does not exist", for_update=for_update)
