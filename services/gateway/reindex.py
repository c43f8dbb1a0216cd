"""Re-index a collection with another model, without downtime.

A re-index builds a new *physical* collection next to the serving one: it pages through the stored
documents (their payload keeps text, title and metadata), embeds them with the new model and upserts
them; when every page is in, one registry update points the collection at the new physical
collection, model and dimensions. Until that moment searches use the old collection and the old
model, so they keep answering; the old physical collection is kept (``previous`` in the collection's
info) until the user deletes it with ``DELETE /v1/collections/{name}/previous``.

Writes during a re-index go to both collections (the *mirror*). An id written by the mirror is never
overwritten by the copy from the old collection, which may hold an older version of it. The mirror's
state is the registry's (the collection row's ``mirror_physical``, the ``mirrored_writes`` ids), and
each write and each copied page runs under the collection row's lock, so this holds whichever gateway
replica takes the write.

Any failure (a model that does not load, the engine, a cancel) deletes the half-built collection
and leaves the old one serving; a gateway that dies mid-way finds the leftover at its next start
(:meth:`Reindexer.recover`) and cleans it up the same way. With several replicas, the others undo a
re-index whose replica has been silent for ``reindex_stale_s`` (:meth:`Reindexer.watch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from counterpoint.errors import Conflict, CounterpointError, InvalidInput
from counterpoint.infra.vectors.base import Bm25Settings, CollectionSpec, VectorRecord
from counterpoint.schemas import Document, JobInfo

if TYPE_CHECKING:
    from counterpoint.services.gateway.core import GatewayCore

logger = logging.getLogger("counterpoint.gateway.reindex")

PAGE = 128
KIND = "reindex"


class ReindexCancelled(Exception):
    """The job was cancelled through the jobs API; the re-index stops at the next page."""


NO_TEXT = (
    "was uploaded as a precomputed vector without text: a re-index embeds every point's text with the "
    "new model, so this collection cannot be re-indexed (upload vectors of the new model to a new "
    "collection instead)"
)


def document_of(payload: dict[str, Any]) -> Document:
    """The document a stored payload came from (``Document.payload`` inverted)."""
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"point '{payload.get('id')}' {NO_TEXT}")
    meta = {k: v for k, v in payload.items() if k not in ("id", "text", "title")}
    return Document(id=str(payload["id"]), text=text, title=payload.get("title"), metadata=meta)


class Reindexer:
    """Starts, runs and recovers re-index jobs (registry jobs of kind ``reindex``)."""

    def __init__(self, core: GatewayCore) -> None:
        self.core = core
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self, name: str, model: str | None, *, add_lexical: bool = False) -> JobInfo:
        from counterpoint.services.gateway.jobs import job_info

        core = self.core
        row = core.registry.get_collection(name)
        if row.reindexing or row.status == "reindexing":
            raise Conflict(f"collection '{name}' is already being re-indexed")
        card = await core.model_card(model or row.model)  # resolves @alias, loads the model: fails early
        assert card.dimensions is not None
        old = await asyncio.to_thread(core.store.spec, row.physical_name)  # the same settings
        lexical = old.lexical or (Bm25Settings() if add_lexical else None)
        if card.id == row.model and lexical == old.lexical:
            more = "" if add_lexical else " (lexical 'bm25' adds BM25 vectors with the same model)"
            raise InvalidInput(f"collection '{name}' already uses {card.id}; nothing to re-index{more}")
        physical = f"{name}-{uuid.uuid4().hex[:8]}"
        config = {
            "collection": name,
            "model": card.id,
            "from_model": row.model,
            "from_physical": row.physical_name,
            "physical_name": physical,
            "dimensions": card.dimensions,
            "lexical": lexical is not None,
        }
        job = core.registry.create_job(KIND, config, name=f"reindex-{name}", status="running")
        try:
            spec = CollectionSpec(
                physical,
                card.dimensions,
                row.distance,  # type: ignore[arg-type]
                dict(row.payload_indexes),  # type: ignore[arg-type]
                old.index,
                lexical,
            )
            await asyncio.to_thread(core.store.create_collection, spec)
            core.registry.start_mirror(name, physical_name=physical, model=card.id)
            total = await asyncio.to_thread(core.store.count, row.physical_name)
            core.registry.update_job(job.id, metrics={"step": 0, "total_steps": total, "indexed": 0})
        except Exception as exc:
            await self._abandon(job.id, name, physical, exc)
            raise
        self.tasks[job.id] = asyncio.create_task(self._run(job.id, config, total))
        return job_info(core.registry.get_job(job.id))

    async def _run(self, job_id: str, config: dict[str, Any], total: int) -> None:
        core, name = self.core, config["collection"]
        physical, model = config["physical_name"], config["model"]
        same_model = model == config.get("from_model")  # only BM25 vectors are added
        scroll = partial(core.store.scroll, with_sparse=True, with_vectors=same_model)
        try:
            copied, offset = 0, None
            while True:
                page, offset = await asyncio.to_thread(scroll, config["from_physical"], PAGE, offset)
                if core.registry.get_job(job_id).status == "cancelled":
                    raise ReindexCancelled("cancelled by the user")
                if same_model:  # the dense vectors are carried over, nothing is embedded; the store
                    # computes the new BM25 vectors from each title and text
                    records = [VectorRecord(r.id, r.vector or [], r.payload) for r in page]
                else:
                    records = await core.embed_records([document_of(r.payload) for r in page], model)
                    # BM25 vectors do not depend on the dense model: carried over, not recomputed
                    records = [replace(r, sparse=old.sparse) for r, old in zip(records, page, strict=True)]
                await asyncio.to_thread(self._copy, name, physical, records)
                copied += len(page)
                core.registry.update_job(
                    job_id, metrics={"step": copied, "total_steps": max(total, copied), "indexed": copied}
                )
                if offset is None:
                    break
            core.registry.switch_model(
                name,
                physical_name=physical,
                model=model,
                dimensions=int(config["dimensions"]),
                expected=config["from_physical"],
            )
            count = await asyncio.to_thread(core.store.count, physical)
            core.registry.update_job(
                job_id,
                status="succeeded",
                metrics={"step": copied, "total_steps": copied, "indexed": copied, "count": count},
            )
            logger.info("re-indexed %s with %s: %d documents", name, model, copied)
        except BaseException as exc:  # noqa: BLE001 - whatever happened, the old collection serves on
            await self._abandon(job_id, name, physical, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self.tasks.pop(job_id, None)

    def _copy(self, name: str, physical: str, records: Sequence[VectorRecord]) -> None:
        """Upsert one copied page into the new collection, but not the ids the mirror wrote (newer)."""
        with self.core.registry.locked(name) as locked:
            if locked.record.mirror_physical != physical:
                raise Conflict(
                    f"the re-index of '{name}' was undone meanwhile (another replica took it as dead)"
                )
            written = locked.mirrored(r.id for r in records)
            self.core.store.upsert(physical, [r for r in records if r.id not in written])

    async def _abandon(self, job_id: str, name: str, physical: str, exc: BaseException) -> None:
        core = self.core
        message = exc.message if isinstance(exc, CounterpointError) else f"{type(exc).__name__}: {exc}"
        logger.warning("re-index of %s abandoned: %s", name, message)
        try:
            if await asyncio.to_thread(core.store.collection_exists, physical):
                await asyncio.to_thread(core.store.delete_collection, physical)
        except Exception:  # noqa: BLE001 - a leftover is cleaned at the next start
            logger.exception("could not delete the half-built collection %s", physical)
        with contextlib.suppress(CounterpointError):
            await asyncio.to_thread(core.registry.end_mirror, name, physical)
        try:
            status = core.registry.get_job(job_id).status
            if status != "cancelled":
                core.registry.update_job(job_id, status="failed", error=message[:2000])
        except CounterpointError:
            pass

    async def recover(self, stale_after_s: float = 0.0) -> None:
        """Undo re-index jobs still marked running that lost their task: not run by this replica and
        silent (no page copied) for ``stale_after_s``. At the start of the only replica: all of them."""
        silent_since = datetime.now(UTC) - timedelta(seconds=stale_after_s)
        for job in self.core.registry.list_jobs(status="running", kind=KIND):
            if job.id in self.tasks or job.updated_at > silent_since:
                continue
            config = job.config
            await self._abandon(
                job.id,
                str(config.get("collection")),
                str(config.get("physical_name")),
                RuntimeError("the gateway replica running the re-index restarted or stopped; run it again"),
            )

    async def watch(self) -> None:
        """With several gateway replicas: undo, every half ``reindex_stale_s``, the re-indexes of a
        replica that stopped (each replica runs this; undoing one twice is harmless)."""
        stale = self.core.settings.reindex_stale_s
        while True:
            await asyncio.sleep(stale / 2)
            try:
                await self.recover(stale)
            except Exception:  # noqa: BLE001 - the registry may be down for a moment: try again later
                logger.exception("could not check for abandoned re-indexes")

    def previous(self, name: str) -> list[str]:
        """Physical collections this collection used before its re-indexes that still exist."""
        row = self.core.registry.get_collection(name)
        found = []
        for job in self.core.registry.list_jobs(status="succeeded", kind=KIND):
            old = job.config.get("from_physical")
            if (
                job.config.get("collection") == name
                and old
                and old != row.physical_name
                and self.core.store.collection_exists(old)
            ):
                found.append(str(old))
        return found

    async def delete_previous(self, name: str) -> list[str]:
        dropped = []
        for physical in await asyncio.to_thread(self.previous, name):
            await asyncio.to_thread(self.core.store.delete_collection, physical)
            dropped.append(physical)
        return dropped
