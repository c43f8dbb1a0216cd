"""The Python SDK: a typed client of the gateway's HTTP API, one method per route.

    from counterpoint.client import Client
    cp = Client()                                  # COUNTERPOINT_API_URL or http://127.0.0.1:8000
    cp.create_collection("papers", payload_indexes={"year": "integer"})
    cp.ingest("papers", [{"id": "1", "text": "Contrastive learning ...", "metadata": {"year": 2020}}])
    cp.search("papers", "what is contrastive learning?", top_k=5).hits
    cp.chat("Tell me about lighthouses.", decoding="contrastive_search", max_tokens=64).text
    for delta in cp.stream_complete("Once upon a time", max_tokens=32): print(delta, end="")

Errors come back as the same `counterpoint.errors` classes the gateway raised.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from counterpoint.errors import ERROR_TYPES, CounterpointError, InvalidInput, Unavailable, error_from_body
from counterpoint.schemas import (
    ChatCompletionResponse,
    ChatMessage,
    CollectionCreate,
    CollectionInfo,
    CollectionList,
    CollectionRestored,
    CompletionResponse,
    CompletionUsage,
    Distance,
    Document,
    EmbeddingRequest,
    EmbeddingResponse,
    FieldType,
    Filter,
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
    RegisteredModel,
    RegisteredModelList,
    RegistryDump,
    RerankRequest,
    RerankResponse,
    SearchRequest,
    SearchResponse,
)
from counterpoint.settings import get_settings

Progress = Callable[[int], None]
# Backups move whole collections: no read/write timeout (the gateway snapshots before the first byte).
# (connect, read, write, pool) as a plain tuple: httpx takes it, and so does httpx2, which Starlette's
# TestClient (the SDK's transport in the unit tests) is built on since Starlette 1.10.
BACKUP_TIMEOUT = (30.0, None, None, 30.0)
Messages = str | Iterable[ChatMessage | Mapping[str, str]]


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Stream documents from a JSONL file (optionally .gz); BEIR's ``_id`` is read as ``id``."""
    import gzip
    import json

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CounterpointError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if "_id" in item and "id" not in item:
                item["id"] = item.pop("_id")
            yield item


def _json_or_none(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return None


def _attachment_name(headers: httpx.Headers, default: str) -> str:
    """The file name of a ``Content-Disposition: attachment; filename="..."`` header (its last part only)."""
    found = re.search(r'filename="?([^";]+)"?', headers.get("content-disposition", ""))
    return Path(found.group(1)).name if found else default


def _messages(messages: Messages) -> list[dict[str, str]]:
    """A string is one user turn; otherwise ``{"role", "content"}`` mappings or `ChatMessage`s."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [m.model_dump() if isinstance(m, ChatMessage) else dict(m) for m in messages]


def _generation_body(params: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    body = {key: value for key, value in params.items() if value is not None}
    body.pop("stream", None)
    return {**body, **fields}


class GenerationStream(Iterator[str]):
    """Text deltas of a streamed completion, read from the gateway's server-sent events.

    Once exhausted, ``finish_reason`` (OpenAI's "stop" | "length"), ``finish_detail``
    ("eos" | "stop" | "length"), ``usage`` and ``text`` (everything received) are set.
    Closing it early (or leaving a ``with`` block) disconnects, which stops the generation.
    """

    def __init__(self, http: httpx.Client, url: str, path: str, body: dict[str, Any]) -> None:
        self.finish_reason: str | None = None
        self.finish_detail: str | None = None
        self.usage: CompletionUsage | None = None
        self._parts: list[str] = []
        self._context = http.stream("POST", path, json=body)
        try:
            self._reply = self._context.__enter__()
        except httpx.TransportError as exc:
            raise Unavailable(
                f"cannot reach the gateway at {url} ({type(exc).__name__}); is `counterpoint up` running?"
            ) from None
        if self._reply.status_code >= 400:
            self._reply.read()
            try:
                error = self._reply.json()
            except ValueError:
                error = None
            self.close()
            raise error_from_body(self._reply.status_code, error)
        self._deltas = self._read()

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def _read(self) -> Iterator[str]:
        for line in self._reply.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            event = json.loads(data)
            if "error" in event:
                kind = ERROR_TYPES.get(str((event["error"] or {}).get("type")), CounterpointError)
                raise error_from_body(kind.status_code, event)
            if event.get("usage"):
                self.usage = CompletionUsage.model_validate(event["usage"])
            for choice in event.get("choices", []):
                text = choice["text"] if "text" in choice else (choice.get("delta") or {}).get("content")
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]
                    self.finish_detail = choice.get("finish_detail")
                if text:
                    self._parts.append(text)
                    yield text
        raise Unavailable("the generation stream ended without [DONE] (the gateway went away?)")

    def __next__(self) -> str:
        try:
            return next(self._deltas)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop reading; the gateway sees the disconnect and stops generating."""
        self._context.__exit__(None, None, None)

    def __enter__(self) -> GenerationStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Client:
    """Synchronous client of one Counterpoint gateway."""

    def __init__(self, url: str | None = None, *, api_key: str | None = None, timeout: float = 120.0) -> None:
        """``api_key`` defaults to the settings' (COUNTERPOINT_API_KEY, else the local admin key file)."""
        settings = get_settings()
        self.url = (url or settings.gateway_url).rstrip("/")
        key = api_key if api_key is not None else settings.client_api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- transport ---------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            reply = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unavailable(
                f"cannot reach the gateway at {self.url} ({type(exc).__name__}); is `counterpoint up` running?"
            ) from None
        try:
            body = reply.json()
        except ValueError:
            body = None
        if reply.status_code >= 400:
            raise error_from_body(reply.status_code, body)
        return body

    # --- health and models -------------------------------------------------------------

    def health(self) -> Health:
        return Health.model_validate(self._request("GET", "/healthz"))

    def models(self) -> list[ModelCard]:
        return ModelList.model_validate(self._request("GET", "/v1/models")).data

    def deploy_model(self, model: str, *, kind: str = "embedding") -> ModelCard:
        """Load ``model`` into the embedding service (``models:/NAME@champion``, ``models:/NAME/3``), or
        with ``kind="reranker"`` into the rerank service; the card's ``id`` is the concrete version."""
        data = self._request("POST", "/v1/models", json={"model": model, "kind": kind})
        return ModelCard.model_validate(data)

    def registered_models(self) -> list[RegisteredModel]:
        """Models in the MLflow registry, each with its aliases and newest versions (with metrics)."""
        return RegisteredModelList.model_validate(self._request("GET", "/v1/registry/models")).models

    def registered_model(self, name: str) -> RegisteredModel:
        return RegisteredModel.model_validate(self._request("GET", f"/v1/registry/models/{name}"))

    def set_alias(self, name: str, version: str | int, alias: str = "champion") -> RegisteredModel:
        """Point ``models:/name@alias`` at ``version``; services following the alias move within seconds."""
        data = self._request(
            "PUT", f"/v1/registry/models/{name}/aliases/{alias}", json={"version": str(version)}
        )
        return RegisteredModel.model_validate(data)

    def delete_alias(self, name: str, alias: str = "champion") -> RegisteredModel:
        data = self._request("DELETE", f"/v1/registry/models/{name}/aliases/{alias}")
        return RegisteredModel.model_validate(data)

    def embed(
        self, input: str | list[str], *, model: str | None = None, dimensions: int | None = None
    ) -> EmbeddingResponse:
        body = EmbeddingRequest(input=input, model=model, dimensions=dimensions)
        data = self._request("POST", "/v1/embeddings", json=body.model_dump(exclude_none=True))
        return EmbeddingResponse.model_validate(data)

    # --- collections -------------------------------------------------------------------

    def list_collections(self) -> list[CollectionInfo]:
        return CollectionList.model_validate(self._request("GET", "/v1/collections")).collections

    def create_collection(
        self,
        name: str,
        *,
        model: str | None = None,
        distance: Distance = "cosine",
        payload_indexes: Mapping[str, FieldType] | None = None,
    ) -> CollectionInfo:
        body = CollectionCreate(
            name=name, model=model, distance=distance, payload_indexes=dict(payload_indexes or {})
        )
        data = self._request("POST", "/v1/collections", json=body.model_dump(exclude_none=True))
        return CollectionInfo.model_validate(data)

    def get_collection(self, name: str) -> CollectionInfo:
        return CollectionInfo.model_validate(self._request("GET", f"/v1/collections/{name}"))

    def reindex(self, name: str, model: str) -> JobInfo:
        """Re-embed collection ``name`` with ``model`` in the background (a job: follow it with
        `follow_job`); searches keep answering from the current collection until the switch."""
        data = self._request("POST", f"/v1/collections/{name}/reindex", json={"model": model})
        return JobInfo.model_validate(data)

    def delete_previous(self, name: str) -> list[str]:
        """Delete the physical collections kept from before ``name``'s re-indexes; their names."""
        return list(self._request("DELETE", f"/v1/collections/{name}/previous")["deleted"])

    def delete_collection(self, name: str) -> None:
        self._request("DELETE", f"/v1/collections/{name}")

    # --- ingest ------------------------------------------------------------------------

    def ingest(
        self,
        collection: str,
        documents: Iterable[Document | Mapping[str, Any]],
        *,
        batch_size: int = 256,
        skip_existing: bool = False,
        on_progress: Progress | None = None,
    ) -> IngestResponse:
        """Send documents in batches; each batch is all-or-nothing and ids make retries safe."""
        totals = IngestResponse(collection=collection, received=0, indexed=0, skipped=0, count=0)
        for batch in _batched(documents, batch_size):
            docs = [d if isinstance(d, Document) else Document.model_validate(d) for d in batch]
            body = IngestRequest(documents=docs, skip_existing=skip_existing)
            reply = IngestResponse.model_validate(
                self._request("POST", f"/v1/collections/{collection}/documents", json=body.model_dump())
            )
            totals.received += reply.received
            totals.indexed += reply.indexed
            totals.skipped += reply.skipped
            totals.count = reply.count
            if on_progress is not None:
                on_progress(len(batch))
        return totals

    def ingest_jsonl(self, collection: str, path: str | Path, **kwargs: Any) -> IngestResponse:
        return self.ingest(collection, read_jsonl(path), **kwargs)

    # --- search ------------------------------------------------------------------------

    def search(
        self,
        collection: str,
        query: str | None = None,
        *,
        vector: list[float] | None = None,
        top_k: int = 10,
        filter: Filter | Mapping[str, Any] | None = None,
        with_text: bool = True,
        rerank: bool = False,
        rerank_top_k: int | None = None,
        rerank_model: str | None = None,
        rerank_fusion: float | None = None,
    ) -> SearchResponse:
        """Vector search; ``rerank=True`` reorders the first ``rerank_top_k`` candidates with the
        cross-encoder (each hit then keeps its ``first_stage_rank``; ``timings`` has every stage).
        ``rerank_fusion`` mixes the first stage's score back in (see `counterpoint.fusion`)."""
        body = SearchRequest(
            query=query,
            vector=vector,
            top_k=top_k,
            filter=Filter.model_validate(filter) if filter is not None else None,
            with_text=with_text,
            rerank=rerank,
            rerank_top_k=rerank_top_k,
            rerank_model=rerank_model,
            rerank_fusion=rerank_fusion,
        )
        data = self._request(
            "POST", f"/v1/collections/{collection}/search", json=body.model_dump(exclude_none=True)
        )
        return SearchResponse.model_validate(data)

    def rerank(
        self,
        query: str,
        documents: list[str],
        *,
        top_n: int | None = None,
        return_documents: bool = False,
        model: str | None = None,
    ) -> RerankResponse:
        """Cross-encoder scores of ``documents`` for ``query``, best first (``results[i].index`` points back)."""
        body = RerankRequest(
            query=query, documents=documents, top_n=top_n, return_documents=return_documents, model=model
        )
        data = self._request("POST", "/v1/rerank", json=body.model_dump(exclude_none=True))
        return RerankResponse.model_validate(data)

    def search_many(
        self,
        collection: str,
        queries: Mapping[str, str],
        *,
        top_k: int = 100,
        concurrency: int = 4,
        on_progress: Progress | None = None,
        rerank: bool = False,
        rerank_top_k: int | None = None,
        rerank_fusion: float | None = None,
    ) -> dict[str, dict[str, float]]:
        """Run many text queries (a few at a time) and return a run: qid -> {doc id: score}."""

        def one(item: tuple[str, str]) -> tuple[str, dict[str, float]]:
            qid, text = item
            reply = self.search(
                collection, text, top_k=top_k, with_text=False, rerank=rerank, rerank_top_k=rerank_top_k,
                rerank_fusion=rerank_fusion,
            )  # fmt: skip
            if on_progress is not None:
                on_progress(1)
            return qid, {hit.id: hit.score for hit in reply.hits}

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return dict(pool.map(one, queries.items()))

    # --- training jobs -----------------------------------------------------------------

    def submit_job(self, config: Mapping[str, Any] | str | Path) -> JobInfo:
        """Submit a training job: a config mapping, YAML/JSON text, or the path of a config file."""
        if isinstance(config, Path) or (
            isinstance(config, str) and "\n" not in config and config.endswith((".yaml", ".yml", ".json"))
        ):
            path = Path(config)
            if not path.is_file():
                raise InvalidInput(f"no such config file: {path}")
            config = path.read_text()
        body = JobCreate(config=dict(config) if isinstance(config, Mapping) else config)
        return JobInfo.model_validate(self._request("POST", "/v1/jobs", json=body.model_dump()))

    def list_jobs(self) -> list[JobInfo]:
        return JobList.model_validate(self._request("GET", "/v1/jobs")).jobs

    def get_job(self, job_id: str) -> JobInfo:
        return JobInfo.model_validate(self._request("GET", f"/v1/jobs/{job_id}"))

    def job_logs(self, job_id: str, *, tail: int = 200) -> str:
        return JobLogs.model_validate(
            self._request("GET", f"/v1/jobs/{job_id}/logs", params={"tail": tail})
        ).logs

    def resume_job(self, job_id: str) -> JobInfo:
        """Run a failed or cancelled job again; it continues from its last checkpoint."""
        return JobInfo.model_validate(self._request("POST", f"/v1/jobs/{job_id}/resume"))

    def cancel_job(self, job_id: str) -> JobInfo:
        return JobInfo.model_validate(self._request("DELETE", f"/v1/jobs/{job_id}"))

    def follow_job(
        self, job_id: str, *, interval: float = 2.0, timeout: float | None = None
    ) -> Iterator[JobInfo]:
        """Yield the job's state every ``interval`` seconds until it finishes (or ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            yield job
            if job.finished or (deadline is not None and time.monotonic() > deadline):
                return
            time.sleep(interval)

    # --- API keys (admin scope) -----------------------------------------------------------

    def create_key(self, name: str, scopes: Iterable[str] = ("read",)) -> KeyCreated:
        """Create an API key; ``.key`` holds the secret, returned this once only."""
        body = KeyCreate(name=name, scopes=list(scopes)).model_dump()
        return KeyCreated.model_validate(self._request("POST", "/v1/keys", json=body))

    def list_keys(self, *, include_revoked: bool = False) -> list[KeyInfo]:
        params = {"include_revoked": str(include_revoked).lower()}
        return KeyList.model_validate(self._request("GET", "/v1/keys", params=params)).keys

    def revoke_key(self, key_id: str) -> KeyInfo:
        """Revoke a key by its id or prefix."""
        return KeyInfo.model_validate(self._request("DELETE", f"/v1/keys/{key_id}"))

    # --- backups (admin scope) ------------------------------------------------------------

    def backup_collection(
        self, name: str, path: str | Path | None = None, *, on_progress: Progress | None = None
    ) -> Path:
        """Download a backup archive of collection ``name``; returns the file written.

        ``path``: the file, or a directory to put it in under the gateway's name
        (``NAME-YYYYMMDDTHHMMSSZ.cpbackup.tar.gz``); default the current directory. The file appears
        only once complete. ``on_progress`` gets the bytes of each chunk received.
        """
        target = Path(path) if path is not None else Path.cwd()
        try:
            with self._http.stream("GET", f"/v1/backups/collections/{name}", timeout=BACKUP_TIMEOUT) as reply:
                if reply.status_code >= 400:
                    reply.read()
                    raise error_from_body(reply.status_code, _json_or_none(reply))
                if target.is_dir():
                    target = target / _attachment_name(reply.headers, f"{name}.cpbackup.tar.gz")
                partial = target.with_name(target.name + ".part")
                partial.parent.mkdir(parents=True, exist_ok=True)
                with open(partial, "wb") as out:
                    for chunk in reply.iter_bytes(1 << 20):
                        out.write(chunk)
                        if on_progress is not None:
                            on_progress(len(chunk))
                partial.replace(target)
        except httpx.TransportError as exc:
            raise Unavailable(
                f"cannot reach the gateway at {self.url} ({type(exc).__name__}); is `counterpoint up` running?"
            ) from None
        return target

    def restore_collection(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        replace: bool = False,
        on_progress: Progress | None = None,
    ) -> CollectionRestored:
        """Upload the backup archive at ``path`` and restore it as ``name`` (default: its name in the backup).

        An existing collection is refused (``Conflict``) unless ``replace``; a bad archive is an
        ``InvalidInput`` and changes nothing. ``on_progress`` gets the bytes of each chunk sent.
        """
        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"no such backup file: {path}")

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as handle:
                while block := handle.read(1 << 20):
                    yield block
                    if on_progress is not None:
                        on_progress(len(block))

        params: dict[str, str] = {"replace": str(replace).lower()}
        if name is not None:
            params["name"] = name
        headers = {"Content-Type": "application/gzip", "Content-Length": str(path.stat().st_size)}
        data = self._request(
            "POST", "/v1/backups/collections", params=params, content=chunks(), headers=headers,
            timeout=BACKUP_TIMEOUT,
        )  # fmt: skip
        return CollectionRestored.model_validate(data)

    def backup_registry(self) -> RegistryDump:
        """Every row of the registry database (collections, jobs, models, API key hashes) as a dump."""
        return RegistryDump.model_validate(
            self._request("GET", "/v1/backups/registry", timeout=BACKUP_TIMEOUT)
        )

    # --- text generation ---------------------------------------------------------------

    def complete(self, prompt: str, **params: Any) -> CompletionResponse:
        """Continue ``prompt`` (``POST /v1/completions``). ``params``: decoding, max_tokens, stop,
        seed, temperature, top_p, top_k, penalty_alpha, cd_alpha, amateur_layers, amateur_temperature."""
        body = _generation_body(params, prompt=prompt, stream=False)
        return CompletionResponse.model_validate(self._request("POST", "/v1/completions", json=body))

    def chat(self, messages: Messages, **params: Any) -> ChatCompletionResponse:
        """Answer a conversation (``POST /v1/chat/completions``); a string is one user message."""
        body = _generation_body(params, messages=_messages(messages), stream=False)
        return ChatCompletionResponse.model_validate(self._request("POST", "/v1/chat/completions", json=body))

    def stream_complete(self, prompt: str, **params: Any) -> GenerationStream:
        """Like `complete`, as an iterator of text deltas (server-sent events)."""
        body = _generation_body(params, prompt=prompt, stream=True, stream_options={"include_usage": True})
        return GenerationStream(self._http, self.url, "/v1/completions", body)

    def stream_chat(self, messages: Messages, **params: Any) -> GenerationStream:
        """Like `chat`, as an iterator of text deltas (server-sent events)."""
        body = _generation_body(
            params, messages=_messages(messages), stream=True, stream_options={"include_usage": True}
        )
        return GenerationStream(self._http, self.url, "/v1/chat/completions", body)
