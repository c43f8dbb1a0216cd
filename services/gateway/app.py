"""The FastAPI application: routes, error bodies and the OpenAPI schema.

Routes only parse HTTP and delegate to `GatewayCore`. Every error leaves as
``{"error": {"type": ..., "message": ...}}`` with a 4xx status for bad input; an
unexpected failure is logged and answered with a 500 that carries no traceback; a part that is
down or restarting (a dead Serve replica, an unreachable database) is a 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from counterpoint import __version__
from counterpoint.errors import CounterpointError, InvalidInput, LimitExceeded, Unavailable
from counterpoint.schemas import (
    AliasUpdate,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CollectionCreate,
    CollectionInfo,
    CollectionList,
    CollectionRestored,
    CompletionRequest,
    CompletionResponse,
    ComponentHealth,
    EmbeddingRequest,
    EmbeddingResponse,
    Health,
    IngestRequest,
    IngestResponse,
    JobCreate,
    JobInfo,
    JobList,
    JobLogs,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyList,
    ModelCard,
    ModelList,
    ModelLoad,
    RegisteredModel,
    RegisteredModelList,
    RegistryDump,
    ReindexRequest,
    RerankRequest,
    RerankResponse,
    SearchRequest,
    SearchResponse,
)
from counterpoint.services.gateway.auth import Guard, KeyStore, require_scope
from counterpoint.services.gateway.backups import gateway_backups
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.services.gateway.generation import SSE_HEADERS, GenerationService
from counterpoint.services.gateway.jobs import JobService, check_tail
from counterpoint.services.gateway.models import ModelRegistryService
from counterpoint.services.outages import as_unavailable, outage_types

logger = logging.getLogger("counterpoint.gateway")

HealthCheck = Callable[[], Awaitable[dict[str, ComponentHealth]]]

_JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "text/plain")


READ, WRITE, TRAIN, ADMIN = (require_scope(s) for s in ("read", "write", "train", "admin"))


def error_response(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"type": kind, "message": message}}
    return JSONResponse(status_code=status, content=body, headers=headers)


class BodySizeLimit:
    """ASGI middleware: a body over ``max_bytes`` gets a 413 naming the limit.

    ``Content-Length`` is checked before the route runs; a chunked body is counted as it arrives.
    ``overrides`` maps exact paths to (limit, setting name): a backup restore may send gigabytes."""

    def __init__(self, app: Any, max_bytes: int, overrides: dict[str, tuple[int, str]] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    def error(self, limit: int | None = None, setting: str = "max_body_bytes") -> LimitExceeded:
        return LimitExceeded(
            f"request body exceeds {limit or self.max_bytes} bytes (setting {setting}): send smaller batches"
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.overrides.get(scope.get("path", ""), (self.max_bytes, "max_body_bytes"))
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            err = self.error(limit, setting)
            await error_response(err.status_code, err.type, err.message)(scope, receive, send)
            return
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise self.error(limit, setting)  # the route's error handler answers 413
            return message

        await self.app(scope, counted, send)


def _describe_validation(errors: list[Any]) -> str:
    parts = []
    for err in errors[:5]:
        if err.get("type") == "json_invalid":  # loc is ("body", character offset)
            reason = (err.get("ctx") or {}).get("error", "JSON decode error")
            parts.append(f"body is not valid JSON ({reason} at character {err.get('loc', ('', '?'))[-1]})")
            continue
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


async def authenticate_first(request: Request) -> JSONResponse | None:
    """The 401/403 (or 429) owed to a request whose body FastAPI could not parse, else None.

    FastAPI reads and parses a JSON body before the route's dependencies run, so a malformed body
    would be answered 422/400 before the key is looked at: a caller without a valid key would learn
    the route's body rules and make the gateway parse its body. The handlers of those errors call
    this first, with the scope the route requires (its ``require_<scope>`` dependency).
    """
    guard = getattr(request.app.state, "guard", None)
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if guard is None or not guard.enabled or dependant is None:
        return None
    for dep in dependant.dependencies:
        name = getattr(dep.call, "__name__", "")
        if name.startswith("require_"):
            try:
                await guard.check(request, name.removeprefix("require_"))
            except CounterpointError as err:
                return error_response(err.status_code, err.type, err.message, err.headers)
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CounterpointError)
    async def _counterpoint(_: Request, exc: CounterpointError) -> JSONResponse:
        return error_response(exc.status_code, exc.type, getattr(exc, "message", str(exc)), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(err.get("type") == "json_invalid" for err in errors):  # raised before the auth dependency
            denied = await authenticate_first(request)
            if denied is not None:
                return denied
        return error_response(422, "invalid_request", _describe_validation(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, CounterpointError):  # FastAPI wraps errors raised reading the body
            return error_response(exc.__cause__.status_code, exc.__cause__.type, exc.__cause__.message)
        if exc.status_code == 400:  # FastAPI could not parse the body: before the auth dependency ran
            denied = await authenticate_first(request)
            if denied is not None:
                return denied
        kind = "not_found" if exc.status_code == 404 else "http_error"
        return error_response(exc.status_code, kind, str(exc.detail))

    async def _outage(_: Request, exc: Exception) -> JSONResponse:
        """A dead or restarting replica, an unreachable database: 503 with Retry-After, never a 500."""
        err = as_unavailable(exc) or Unavailable(
            f"a part of the platform is unavailable ({type(exc).__name__})"
        )
        logger.warning("answering 503: %s", err.message)
        return error_response(err.status_code, err.type, err.message, err.headers)

    for outage in outage_types():
        app.add_exception_handler(outage, _outage)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        cause = getattr(exc, "cause", None)  # Ray wraps errors raised in other replicas
        if isinstance(cause, CounterpointError):
            return error_response(cause.status_code, cause.type, cause.message, cause.headers)
        if as_unavailable(exc) is not None:  # an outage wrapped in another error
            return await _outage(request, exc)
        logger.exception("unhandled error")
        return error_response(500, "internal_error", f"internal error ({type(exc).__name__}); see the logs")


def parse_jsonl(raw: bytes) -> list[dict[str, Any]]:
    """Parse JSON Lines, naming the first bad line."""
    docs = []
    for number, line in enumerate(raw.decode("utf-8", errors="strict").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"line {number} is not valid JSON: {exc.msg}") from None
        if not isinstance(item, dict):
            raise InvalidInput(f"line {number} must be a JSON object, got {type(item).__name__}")
        docs.append(item)
    if not docs:
        raise InvalidInput("the upload contains no documents")
    return docs


async def read_ingest_body(request: Request) -> IngestRequest:
    """Accept a JSON body, a raw JSONL body, or a multipart upload with a ``file`` field."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    skip = request.query_params.get("skip_existing", "false").lower() in ("1", "true", "yes")
    try:
        if ctype == "multipart/form-data":
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidInput("multipart upload needs a 'file' field holding JSONL")
            return IngestRequest(documents=parse_jsonl(await upload.read()), skip_existing=skip)
        raw = await request.body()
        if ctype in _JSONL_TYPES:
            return IngestRequest(documents=parse_jsonl(raw), skip_existing=skip)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidInput("body is not valid JSON (send JSONL as application/x-ndjson)") from None
        if isinstance(body, list):
            body = {"documents": body}
        if skip and isinstance(body, dict):
            body.setdefault("skip_existing", True)
        return IngestRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidInput(_describe_validation(list(exc.errors()))) from None
    except UnicodeDecodeError:
        raise InvalidInput("upload is not UTF-8 text") from None


_INGEST_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/IngestRequest"}},
            "application/x-ndjson": {"schema": {"type": "string", "description": "one Document per line"}},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
            },
        },
    }
}


RESTORE_PATH = "/v1/backups/collections"
_ARCHIVE_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
    }
}

_STREAM_OPENAPI = {
    "responses": {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
}

DECODE_DISABLED = (
    "text generation is not enabled on this gateway: start it with COUNTERPOINT_DECODE_ENABLED=true "
    "(the default) and a causal LM in COUNTERPOINT_DECODE_MODEL"
)


def create_app(
    core: GatewayCore,
    extra_health: HealthCheck | None = None,
    jobs: JobService | None = None,
    generation: GenerationService | None = None,
    registry: ModelRegistryService | None = None,
) -> FastAPI:
    """Build the gateway's FastAPI app around a `GatewayCore` (and a `JobService` for training,
    a `GenerationService` for text generation, a `ModelRegistryService` for registered models)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await core.reindexer.recover()  # a re-index the last gateway left half-done is undone
        yield

    app = FastAPI(
        title="Counterpoint",
        version=__version__,
        description="Train, serve and search contrastive embedding models.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    keys = KeyStore(core.registry, core.settings)
    app.state.guard = Guard(core.settings, keys)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=core.settings.max_body_bytes,
        overrides={RESTORE_PATH: (core.settings.max_restore_bytes, "max_restore_bytes")},
    )

    def openapi() -> dict[str, Any]:
        """Standard schema plus the ingest body, which the route parses by hand."""
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            ingest = IngestRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(ingest.pop("$defs", {}))
            components["IngestRequest"] = ingest
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        parts = await core.health()
        if generation is not None:
            parts["decode"] = await generation.health()
        if extra_health is not None:
            parts.update(await extra_health())
        states = {p.status for p in parts.values()}
        overall = "ok" if states <= {"ok"} else ("down" if states == {"down"} else "degraded")
        return Health(status=overall, components=parts)

    @app.get("/v1/models", response_model=ModelList, tags=["models"], dependencies=[READ])
    async def models() -> ModelList:
        cards = await core.models() + await core.rerank_models()
        if generation is not None:
            cards += await generation.models()
        return ModelList(data=cards)

    @app.post("/v1/models", response_model=ModelCard, tags=["models"], dependencies=[TRAIN])
    async def load_model(body: ModelLoad) -> ModelCard:
        """Deploy a model to the embedding service: a served name, ``models:/NAME/VERSION`` or
        ``models:/NAME@ALIAS`` (resolved to its version now). Later requests may name it."""
        return await core.load_model(body.model, body.kind)

    def model_registry() -> ModelRegistryService:
        if registry is None:
            raise Unavailable("the model registry is not configured on this gateway (no MLflow tracking URI)")
        return registry

    @app.get("/v1/registry/models", response_model=RegisteredModelList, tags=["models"], dependencies=[READ])
    async def registered_models() -> RegisteredModelList:
        return RegisteredModelList(models=await model_registry().list())

    @app.get(
        "/v1/registry/models/{name}", response_model=RegisteredModel, tags=["models"], dependencies=[READ]
    )
    async def registered_model(name: str) -> RegisteredModel:
        return await model_registry().get(name)

    @app.put(
        "/v1/registry/models/{name}/aliases/{alias}",
        response_model=RegisteredModel,
        tags=["models"],
        dependencies=[TRAIN],
    )
    async def set_alias(name: str, alias: str, body: AliasUpdate) -> RegisteredModel:
        """Point ``models:/NAME@ALIAS`` (e.g. ``champion``) at a version."""
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]{0,62}", alias) or re.fullmatch(r"[vV]\d+|latest", alias):
            raise InvalidInput(
                f"alias '{alias}': use letters, digits, '_' or '-', starting with a letter "
                "(not 'latest' or v<digits>, which MLflow reserves)"
            )
        return await model_registry().set_alias(name, alias, body.version)

    @app.delete(
        "/v1/registry/models/{name}/aliases/{alias}",
        response_model=RegisteredModel,
        tags=["models"],
        dependencies=[TRAIN],
    )
    async def delete_alias(name: str, alias: str) -> RegisteredModel:
        return await model_registry().delete_alias(name, alias)

    @app.post("/v1/embeddings", response_model=EmbeddingResponse, tags=["embeddings"], dependencies=[READ])
    async def embeddings(body: EmbeddingRequest) -> EmbeddingResponse:
        return await core.embed(body)

    @app.post("/v1/rerank", response_model=RerankResponse, tags=["rerank"], dependencies=[READ])
    async def rerank(body: RerankRequest) -> RerankResponse:
        """Score ``documents`` (or TEI's ``texts``) for ``query`` with the cross-encoder, best first."""
        return await core.rerank(body)

    @app.get("/v1/collections", response_model=CollectionList, tags=["collections"], dependencies=[READ])
    async def list_collections() -> CollectionList:
        return CollectionList(collections=await core.list_collections())

    @app.post(
        "/v1/collections",
        response_model=CollectionInfo,
        status_code=201,
        tags=["collections"],
        dependencies=[WRITE],
    )
    async def create_collection(body: CollectionCreate) -> CollectionInfo:
        return await core.create_collection(body)

    @app.get(
        "/v1/collections/{name}", response_model=CollectionInfo, tags=["collections"], dependencies=[READ]
    )
    async def describe_collection(name: str) -> CollectionInfo:
        return await core.describe(name)

    @app.delete("/v1/collections/{name}", tags=["collections"], dependencies=[WRITE])
    async def delete_collection(name: str) -> dict[str, Any]:
        await core.delete_collection(name)
        return {"deleted": name}

    @app.post(
        "/v1/collections/{name}/documents",
        response_model=IngestResponse,
        tags=["collections"],
        openapi_extra=_INGEST_OPENAPI,
        dependencies=[WRITE],
    )
    async def ingest(name: str, request: Request) -> IngestResponse:
        return await core.ingest(name, await read_ingest_body(request))

    @app.post(
        "/v1/collections/{name}/search",
        response_model=SearchResponse,
        tags=["collections"],
        dependencies=[READ],
    )
    async def search(name: str, body: SearchRequest) -> SearchResponse:
        return await core.search(name, body)

    @app.post(
        "/v1/collections/{name}/reindex",
        response_model=JobInfo,
        status_code=202,
        tags=["collections"],
        dependencies=[WRITE],
    )
    async def reindex(name: str, body: ReindexRequest) -> JobInfo:
        """Re-embed the collection with another model in the background, then switch to it at once;
        searches keep answering from the current one meanwhile. Follow it as a job."""
        return await core.reindexer.start(name, body.model)

    @app.delete("/v1/collections/{name}/previous", tags=["collections"], dependencies=[WRITE])
    async def delete_previous(name: str) -> dict[str, Any]:
        """Delete the physical collections kept from before this collection's re-indexes."""
        return {"collection": name, "deleted": await core.reindexer.delete_previous(name)}

    def generation_service() -> GenerationService:
        if generation is None:
            raise Unavailable(DECODE_DISABLED)
        return generation

    @app.post(
        "/v1/completions",
        response_model=CompletionResponse,
        tags=["generation"],
        openapi_extra=_STREAM_OPENAPI,
        dependencies=[READ],
    )
    async def completions(body: CompletionRequest) -> Any:
        service = generation_service()
        if body.stream:
            events = await service.stream(body)
            return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
        return await service.complete(body)

    @app.post(
        "/v1/chat/completions",
        response_model=ChatCompletionResponse,
        tags=["generation"],
        openapi_extra=_STREAM_OPENAPI,
        dependencies=[READ],
    )
    async def chat_completions(body: ChatCompletionRequest) -> Any:
        service = generation_service()
        if body.stream:
            events = await service.stream(body)
            return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
        return await service.chat(body)

    @app.post("/v1/keys", response_model=KeyCreated, status_code=201, tags=["keys"], dependencies=[ADMIN])
    async def create_key(body: KeyCreate) -> KeyCreated:
        """Create an API key with the given scopes; the key is in this response only."""
        record, key = await asyncio.to_thread(keys.create, body.name, body.scopes)
        return KeyCreated(**KeyInfo.from_record(record).model_dump(), key=key)

    @app.get("/v1/keys", response_model=KeyList, tags=["keys"], dependencies=[ADMIN])
    async def list_keys(include_revoked: bool = False) -> KeyList:
        records = await asyncio.to_thread(keys.list, include_revoked=include_revoked)
        return KeyList(keys=[KeyInfo.from_record(r) for r in records])

    @app.delete("/v1/keys/{key_id}", response_model=KeyInfo, tags=["keys"], dependencies=[ADMIN])
    async def revoke_key(key_id: str) -> KeyInfo:
        """Revoke a key by id or prefix; it stops working at once on this gateway."""
        return KeyInfo.from_record(await asyncio.to_thread(keys.revoke, key_id))

    backups = gateway_backups(core)

    @app.get(
        "/v1/backups/collections/{name}",
        response_class=FileResponse,
        tags=["backups"],
        dependencies=[ADMIN],
        responses={200: {"content": {"application/gzip": {}}, "description": "the backup archive"}},
    )
    async def backup_collection(name: str) -> FileResponse:
        """A backup archive of the collection (.cpbackup.tar.gz): its registry entry and a consistent
        snapshot of the vectors serving it now (ingest waits while the snapshot is copied)."""
        path, cleanup = await backups.backup_for_download(name)
        return FileResponse(
            path, media_type="application/gzip", filename=path.name, background=BackgroundTask(cleanup)
        )

    @app.post(
        RESTORE_PATH,
        response_model=CollectionRestored,
        status_code=201,
        tags=["backups"],
        dependencies=[ADMIN],
        openapi_extra=_ARCHIVE_OPENAPI,
    )
    async def restore_collection(
        request: Request, name: str | None = None, replace: bool = False
    ) -> CollectionRestored:
        """Restore a collection from a backup archive sent as the body, as ``name`` (default: its name in
        the backup). An existing collection is refused (409) unless ``replace``; a bad archive is a 422
        and changes nothing."""
        return await backups.restore_upload(request.stream(), name=name, replace=replace)

    @app.get("/v1/backups/registry", response_model=RegistryDump, tags=["backups"], dependencies=[ADMIN])
    async def backup_registry() -> RegistryDump:
        """Every row of the registry database as JSON (`counterpoint restore registry` loads it)."""
        return await asyncio.to_thread(backups.dump_registry)

    def job_service() -> JobService:
        if jobs is None:
            raise Unavailable("training jobs are not enabled on this gateway (no Ray job API configured)")
        return jobs

    @app.get("/v1/jobs", response_model=JobList, tags=["jobs"], dependencies=[READ])
    async def list_jobs() -> JobList:
        return JobList(jobs=await job_service().list())

    @app.post("/v1/jobs", response_model=JobInfo, status_code=201, tags=["jobs"], dependencies=[TRAIN])
    async def submit_job(body: JobCreate) -> JobInfo:
        return await job_service().submit(body)

    @app.get("/v1/jobs/{job_id}", response_model=JobInfo, tags=["jobs"], dependencies=[READ])
    async def get_job(job_id: str) -> JobInfo:
        return await job_service().get(job_id)

    @app.get("/v1/jobs/{job_id}/logs", response_model=JobLogs, tags=["jobs"], dependencies=[TRAIN])
    async def job_logs(job_id: str, tail: int = 200) -> JobLogs:
        return await job_service().logs(job_id, check_tail(tail))

    @app.post("/v1/jobs/{job_id}/resume", response_model=JobInfo, tags=["jobs"], dependencies=[TRAIN])
    async def resume_job(job_id: str) -> JobInfo:
        """Run a failed or cancelled job again: it continues from its last checkpoint."""
        return await job_service().resume(job_id)

    @app.delete("/v1/jobs/{job_id}", response_model=JobInfo, tags=["jobs"], dependencies=[TRAIN])
    async def cancel_job(job_id: str) -> JobInfo:
        return await job_service().cancel(job_id)

    return app
