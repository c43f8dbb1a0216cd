"""Back up and restore collections (an archive: registry entry + vector snapshot) and the registry (a dump).

The gateway owns the vector store for its whole process (the embedded engine admits one process per
collection directory), so online backups run here, behind admin-scoped routes; the CLI's
``--offline`` builds the same `Backups` on the data directory of a stopped platform (`offline.py`).

A backup copies the *physical* collection serving the name at that moment (a re-index builds others
beside it). A restore checks the whole archive in a staging directory first, builds a new physical
collection from it, and only then registers it (or, with ``replace``, switches the existing name to it
in one registry update and drops the old vectors); any failure before that deletes what it built, so
a bad archive changes nothing. A name that is registered but has no vectors (after ``counterpoint
restore registry`` into a new data directory) is filled in without ``replace``: nothing is overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from counterpoint import __version__
from counterpoint.errors import Conflict, CounterpointError, InvalidInput, NotFound, Unavailable
from counterpoint.infra.db.dump import dump_registry
from counterpoint.infra.db.registry import CollectionRecord, Registry
from counterpoint.infra.vectors.base import (
    Bm25Settings,
    CollectionSpec,
    IndexSettings,
    Snapshots,
    VectorStore,
)
from counterpoint.schemas import (
    COLLECTION_NAME,
    Bm25Config,
    CollectionInfo,
    CollectionRestored,
    IndexConfig,
    RegistryDump,
)
from counterpoint.services.gateway.archive import VECTORS, Manifest, read_archive, write_archive
from counterpoint.settings import Settings

if TYPE_CHECKING:
    from counterpoint.services.gateway.core import GatewayCore

logger = logging.getLogger("counterpoint.gateway.backups")

ModelCheck = Callable[[str, int], Awaitable[None]]
ARCHIVE_SUFFIX = ".cpbackup.tar.gz"


def archive_name(collection: str, when: datetime | None = None) -> str:
    """``papers-20261201T201500Z.cpbackup.tar.gz``: the default file name of a collection backup."""
    return f"{collection}-{(when or datetime.now(UTC)):%Y%m%dT%H%M%SZ}{ARCHIVE_SUFFIX}"


class Backups:
    """Collection archives and registry dumps over one registry and vector store.

    A replace waits for a re-index of the collection to end (the registry's swap refuses while one
    runs, whichever replica started it). ``check_model(model, dimensions)`` (online only) makes sure the restored
    collection's model is served with those dimensions before anything is built.
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        store: VectorStore,
        *,
        check_model: ModelCheck | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.check_model = check_model

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """A private directory in the data dir's tmp/ (same disk as the vectors), deleted afterwards."""
        self.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="backup-", dir=self.settings.tmp_dir))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _snapshots(self) -> Snapshots:
        if not isinstance(self.store, Snapshots):
            raise Unavailable(f"the {self.settings.vector_backend} vector store cannot take snapshots")
        return self.store

    # --- collections ---------------------------------------------------------------------

    def backup_collection(self, name: str, out_dir: Path) -> Path:
        """Write a backup of collection ``name`` into ``out_dir``; the archive's path. Blocking."""
        row = self.registry.get_collection(name)
        store = self._snapshots()
        with self.scratch() as work:
            vectors = work / VECTORS
            vectors.mkdir()
            points = store.export_snapshot(row.physical_name, vectors)
            spec = self.store.spec(row.physical_name)
            now = datetime.now(UTC)
            manifest = {
                "created_at": now.isoformat(),
                "counterpoint_version": __version__,
                "collection": {
                    "name": row.name,
                    "model": row.model,
                    "dimensions": row.dimensions,
                    "distance": row.distance,
                    "payload_indexes": row.payload_indexes,
                    "physical_name": row.physical_name,
                    "created_at": row.created_at.isoformat(),
                    "index": asdict(spec.index),
                    "lexical": None if spec.lexical is None else asdict(spec.lexical),
                },
                "vectors": {
                    "format": store.snapshot_format,
                    "backend": self.settings.vector_backend,
                    "points": points,
                },
            }
            out = Path(out_dir) / archive_name(name, now)
            write_archive(out, manifest, vectors)
        logger.info("backed up %s (%s, %d points) to %s", name, row.physical_name, points, out)
        return out

    async def restore_collection(
        self, archive: Path, *, name: str | None = None, replace: bool = False
    ) -> CollectionRestored:
        """Restore the backup ``archive`` as collection ``name`` (default: its name in the backup)."""
        with self.scratch() as work:
            manifest = await asyncio.to_thread(read_archive, Path(archive), work)
            source = manifest.collection
            target = name or source.name
            if not COLLECTION_NAME.match(target):
                raise InvalidInput(
                    f"collection name {target!r}: use 1-63 letters, digits, '_' or '-', starting with a letter or digit"
                )
            existing = self._existing(target)
            dangling = existing is not None and not await asyncio.to_thread(
                self.store.collection_exists, existing.physical_name
            )
            if existing is not None and not dangling:
                if not replace:
                    raise Conflict(
                        f"collection '{target}' already exists: restore it under another name, or replace it "
                        "(--replace; its current documents are lost)"
                    )
                if existing.status == "reindexing" or existing.reindexing:
                    raise Conflict(
                        f"collection '{target}' is being re-indexed: wait for it (or cancel it) first"
                    )
            if self.check_model is not None:
                await self.check_model(source.model, source.dimensions)
            physical = f"{target}-{uuid.uuid4().hex[:8]}"
            index = IndexSettings(**source.index.model_dump())
            lexical = None if source.lexical is None else Bm25Settings(**source.lexical.model_dump())
            spec = CollectionSpec(
                physical, source.dimensions, source.distance, dict(source.payload_indexes), index, lexical
            )
            await asyncio.to_thread(self._load_vectors, manifest, spec, work / VECTORS)
        try:
            count = await asyncio.to_thread(self.store.count, physical)
            if count != manifest.vectors.points and manifest.vectors.format == "edge-shard":
                raise InvalidInput(
                    f"the backup is corrupt: it lists {manifest.vectors.points} points, {count} loaded"
                )
            fields: dict[str, Any] = {
                "physical_name": physical,
                "model": source.model,
                "dimensions": source.dimensions,
                "distance": source.distance,
                "payload_indexes": dict(source.payload_indexes),
            }
            if existing is None:
                self.registry.create_collection(target, status="ready", **fields)
            else:
                self.registry.replace_collection(target, expected=existing.physical_name, **fields)
        except BaseException:
            with contextlib.suppress(CounterpointError):
                await asyncio.to_thread(self.store.delete_collection, physical)
            raise
        replaced = existing is not None and not dangling
        if replaced:
            assert existing is not None
            with contextlib.suppress(NotFound):
                await asyncio.to_thread(self.store.delete_collection, existing.physical_name)
        logger.info("restored %s as %s (%d points, replaced=%s)", source.name, target, count, replaced)
        return CollectionRestored(
            collection=await self._info(target, count),
            source=source.name,
            backed_up_at=manifest.created_at,
            points=count,
            snapshot_format=manifest.vectors.format,
            replaced=replaced,
        )

    def _existing(self, name: str) -> CollectionRecord | None:
        try:
            return self.registry.get_collection(name)
        except NotFound:
            return None

    def _load_vectors(self, manifest: Manifest, spec: CollectionSpec, vectors: Path) -> None:
        """Build ``spec`` from the snapshot: natively when the store writes this format, otherwise (an
        embedded-engine backup on a Qdrant server) by replaying its points; a failure leaves nothing."""
        fmt = manifest.vectors.format
        store = self.store
        if isinstance(store, Snapshots) and store.snapshot_format == fmt:
            store.import_snapshot(spec, vectors)
            return
        if fmt != "edge-shard":
            raise InvalidInput(
                f"the backup holds a {fmt} snapshot (from a {manifest.vectors.backend} vector store), which the "
                f"{self.settings.vector_backend} vector store cannot load: restore it where "
                f"COUNTERPOINT_VECTOR_BACKEND={manifest.vectors.backend}"
            )
        from counterpoint.infra.vectors.edge import shard_records

        store.create_collection(spec)
        try:
            for records in shard_records(vectors / "shard"):
                store.upsert(spec.name, records)
        except BaseException as exc:
            with contextlib.suppress(CounterpointError):
                store.delete_collection(spec.name)
            if isinstance(exc, CounterpointError) or not isinstance(exc, Exception):
                raise
            raise InvalidInput(f"the backup's shard could not be read: {str(exc)[:300]}") from None

    async def _info(self, name: str, count: int) -> CollectionInfo:
        row = self.registry.get_collection(name)
        spec = await asyncio.to_thread(self.store.spec, row.physical_name)
        return CollectionInfo(
            name=row.name,
            model=row.model,
            dimensions=row.dimensions,
            distance=row.distance,  # type: ignore[arg-type]
            payload_indexes=row.payload_indexes,  # type: ignore[arg-type]
            count=count,
            status=row.status,
            created_at=row.created_at,
            index=IndexConfig(**asdict(spec.index)),
            lexical=None if spec.lexical is None else "bm25",
            bm25=None if spec.lexical is None else Bm25Config(**asdict(spec.lexical)),
        )

    # --- registry ------------------------------------------------------------------------

    def dump_registry(self) -> RegistryDump:
        """Every row of the registry (a consistent read). Blocking."""
        return RegistryDump.model_validate(dump_registry(self.registry.engine))

    # --- over HTTP -----------------------------------------------------------------------

    async def backup_for_download(self, name: str) -> tuple[Path, Callable[[], None]]:
        """Write a backup of ``name`` to a scratch directory: the archive and what deletes it (after sending)."""
        self.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        out = Path(tempfile.mkdtemp(prefix="download-", dir=self.settings.tmp_dir))
        try:
            path = await asyncio.to_thread(self.backup_collection, name, out)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
        return path, lambda: shutil.rmtree(out, ignore_errors=True)

    async def restore_upload(
        self, body: AsyncIterator[bytes], *, name: str | None = None, replace: bool = False
    ) -> CollectionRestored:
        """Restore from an archive arriving as a request body: streamed to disk, never held in memory."""
        with self.scratch() as work:
            archive = work / "upload.tar.gz"
            size = 0
            with open(archive, "wb") as handle:
                async for chunk in body:
                    if chunk:
                        size += len(chunk)
                        await asyncio.to_thread(handle.write, chunk)
            if not size:
                raise InvalidInput("send the backup archive (a .cpbackup.tar.gz file) as the request body")
            return await self.restore_collection(archive, name=name, replace=replace)


def gateway_backups(core: GatewayCore) -> Backups:
    """The gateway's `Backups`: its registry and store; a replace waits for a re-index; models checked."""

    async def check_model(model: str, dimensions: int) -> None:
        try:
            card = await core.model_card(model)
        except CounterpointError as exc:
            raise InvalidInput(
                f"the backup's collection uses the model {model}, which this platform cannot serve "
                f"({exc.message}); deploy or register it first"
            ) from None
        if card.dimensions != dimensions:
            raise InvalidInput(
                f"the backup's collection has {dimensions}-d vectors but {model} here makes "
                f"{card.dimensions}-d ones: it is not the same model"
            )

    return Backups(
        core.settings,
        core.registry,
        core.store,
        check_model=check_model,
    )
