"""Collections: create, list, describe and delete them, ingest documents or precomputed vectors, search,
re-index."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from counterpoint.schemas import (
    CollectionCreate,
    CollectionInfo,
    CollectionList,
    IngestResponse,
    JobInfo,
    RecallCheckRequest,
    RecallReport,
    ReindexRequest,
    SearchRequest,
    SearchResponse,
    SearchSettingsUpdate,
    VectorUploadRequest,
)
from counterpoint.services.gateway.auth import READ, WRITE
from counterpoint.services.gateway.dependencies import Services
from counterpoint.services.gateway.ingest_body import INGEST_OPENAPI, read_ingest_body
from counterpoint.services.gateway.recall import recall_report, update_search_settings
from counterpoint.services.gateway.vector_body import VECTORS_BINARY_OPENAPI, read_binary_vectors
from counterpoint.services.gateway.vector_upload import upload_vectors as store_vectors

router = APIRouter(tags=["collections"])


@router.get("/v1/collections", response_model=CollectionList, dependencies=[READ])
async def list_collections(services: Services) -> CollectionList:
    return CollectionList(collections=await services.core.list_collections())


@router.post("/v1/collections", response_model=CollectionInfo, status_code=201, dependencies=[WRITE])
async def create_collection(body: CollectionCreate, services: Services) -> CollectionInfo:
    return await services.core.create_collection(body)


@router.get("/v1/collections/{name}", response_model=CollectionInfo, dependencies=[READ])
async def describe_collection(name: str, services: Services) -> CollectionInfo:
    return await services.core.describe(name)


@router.delete("/v1/collections/{name}", dependencies=[WRITE])
async def delete_collection(name: str, services: Services) -> dict[str, Any]:
    await services.core.delete_collection(name)
    return {"deleted": name}


@router.post(
    "/v1/collections/{name}/documents",
    response_model=IngestResponse,
    openapi_extra=INGEST_OPENAPI,
    dependencies=[WRITE],
)
async def ingest(name: str, request: Request, services: Services) -> IngestResponse:
    return await services.core.ingest(name, await read_ingest_body(request))


@router.post("/v1/collections/{name}/vectors", response_model=IngestResponse, dependencies=[WRITE])
async def upload_vectors(name: str, body: VectorUploadRequest, services: Services) -> IngestResponse:
    """Store precomputed vectors as they are (no embedding), each with an optional text, title and
    metadata; checked whole first (dimensions, NaN/inf, duplicate ids, metadata types), then all or
    nothing. ``skip_existing`` resumes an interrupted upload. Refused (409) during a re-index."""
    return await store_vectors(services.core, name, body)


@router.post(
    "/v1/collections/{name}/vectors/binary",
    response_model=IngestResponse,
    openapi_extra=VECTORS_BINARY_OPENAPI,
    dependencies=[WRITE],
)
async def upload_binary_vectors(name: str, request: Request, services: Services) -> IngestResponse:
    """Like ``POST .../vectors``, the vectors as raw float32 after a JSON header line (what the SDK
    sends: a third fewer bytes than base64 and nothing to decode)."""
    header, raw = await read_binary_vectors(request)
    return await store_vectors(services.core, name, header, raw)


@router.post("/v1/collections/{name}/search", response_model=SearchResponse, dependencies=[READ])
async def search(name: str, body: SearchRequest, services: Services) -> SearchResponse:
    return await services.core.search(name, body)


@router.post("/v1/collections/{name}/check-recall", response_model=RecallReport, dependencies=[WRITE])
async def check_recall(name: str, body: RecallCheckRequest, services: Services) -> RecallReport:
    """Search ``samples`` stored vectors approximately and exactly: recall@top_k and latency with the
    collection's settings and per search ef of a ladder, and the smallest ef reaching the target (0.98)."""
    return await recall_report(services.core, name, body)


@router.patch("/v1/collections/{name}/index", response_model=CollectionInfo, dependencies=[WRITE])
async def update_index(name: str, body: SearchSettingsUpdate, services: Services) -> CollectionInfo:
    """Change the collection's search ef and/or oversampling (e.g. to what check-recall suggests):
    searches use them at once, the graph stays as built. Unset fields are kept."""
    return await update_search_settings(services.core, name, body)


@router.post("/v1/collections/{name}/reindex", response_model=JobInfo, status_code=202, dependencies=[WRITE])
async def reindex(name: str, body: ReindexRequest, services: Services) -> JobInfo:
    """Re-embed the collection with another model in the background, then switch to it at once;
    searches keep answering from the current one meanwhile. Follow it as a job. ``lexical: "bm25"``
    adds BM25 vectors (with the same model or another)."""
    return await services.core.reindexer.start(name, body.model, add_lexical=body.lexical is not None)


@router.delete("/v1/collections/{name}/previous", dependencies=[WRITE])
async def delete_previous(name: str, services: Services) -> dict[str, Any]:
    """Delete the physical collections kept from before this collection's re-indexes."""
    return {"collection": name, "deleted": await services.core.reindexer.delete_previous(name)}
