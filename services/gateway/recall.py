"""Search quality of a collection: the recall check (``POST /v1/collections/{name}/check-recall``) and
the search-time settings it leads to (``PATCH /v1/collections/{name}/index``).

The check runs :func:`counterpoint.infra.vectors.recall.check_recall` on the collection's physical store
collection in a worker thread and reports it with the collection's search ef and index counts; the
settings change goes to the store's ``set_search`` (the graph stays as built).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import TYPE_CHECKING

from counterpoint.infra.vectors.recall import check_recall
from counterpoint.schemas import (
    CollectionInfo,
    RecallCheckRequest,
    RecallReport,
    RecallStep,
    SearchSettingsUpdate,
)

if TYPE_CHECKING:
    from counterpoint.services.gateway.core import GatewayCore


async def recall_report(core: GatewayCore, name: str, request: RecallCheckRequest) -> RecallReport:
    """recall@top_k of collection ``name`` now, and per search ef of the ladder (``InvalidInput`` if empty)."""
    physical = core.registry.get_collection(name).physical_name
    result = await asyncio.to_thread(
        check_recall, core.store, physical, request.samples, request.top_k, label=name
    )
    spec = await asyncio.to_thread(core.store.spec, physical)
    status = await asyncio.to_thread(core.store.index_status, physical)
    return RecallReport(
        collection=name,
        samples=result.samples,
        top_k=result.top_k,
        recall=result.current.recall,
        p50_ms=result.current.p50_ms,
        exact_p50_ms=result.exact_p50_ms,
        hnsw_ef=spec.index.hnsw_ef,
        ladder=[RecallStep(**asdict(step)) for step in result.ladder],
        target=result.target,
        suggested_hnsw_ef=result.suggested_hnsw_ef,
        points=status["points"],
        indexed_points=status["indexed_vectors"],
    )


async def update_search_settings(
    core: GatewayCore, name: str, request: SearchSettingsUpdate
) -> CollectionInfo:
    """Set collection ``name``'s search ef / oversampling (searches use them at once); its description."""
    physical = core.registry.get_collection(name).physical_name
    await asyncio.to_thread(
        core.store.set_search, physical, hnsw_ef=request.hnsw_ef, oversampling=request.oversampling
    )
    return await core.describe(name)
