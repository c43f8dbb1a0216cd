"""What the gateway does, independent of HTTP and of Ray.

`GatewayCore` validates requests against the configured limits, resolves collections in
the registry, embeds through an `EmbedderBackend` and reads/writes the `VectorStore`.
The FastAPI routes are thin wrappers around these methods, and unit tests drive the same
methods with an in-process embedder.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from counterpoint.datasets import passage_text
from counterpoint.errors import InvalidInput, LimitExceeded, Unavailable
from counterpoint.infra.db.registry import CollectionRecord, Registry
from counterpoint.infra.vectors.base import (
    Bm25Settings,
    CollectionSpec,
    IndexSettings,
    Retrieval,
    VectorRecord,
    VectorStore,
)
from counterpoint.models.embedder import Embeddings, truncate_and_normalize
from counterpoint.models.export import split_backend, with_backend
from counterpoint.schemas import (
    CollectionCreate,
    CollectionInfo,
    ComponentHealth,
    Document,
    EmbeddingItem,
    EmbeddingRequest,
    EmbeddingResponse,
    FieldType,
    IngestRequest,
    IngestResponse,
    ModelCard,
    RerankRequest,
    RerankResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
    Usage,
    metadata_mismatch,
)
from counterpoint.schemas.embeddings import encode_embedding
from counterpoint.services.embed.backends import EmbedderBackend
from counterpoint.services.gateway.health import core_health
from counterpoint.services.gateway.reindex import Reindexer
from counterpoint.services.gateway.reranking import rerank_response, rescore
from counterpoint.services.rerank.backends import RerankerBackend
from counterpoint.settings import Backend, Limits, Settings


class GatewayCore:
    """Embeddings, collections, ingest and search, with the platform's validation rules."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        store: VectorStore,
        embedder: EmbedderBackend,
        reranker: RerankerBackend | None = None,
        *,
        query_embedder: EmbedderBackend | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.embedder = embedder
        self.query_embedder = query_embedder or embedder  # search queries: the query lane, if any
        self.reranker = reranker
        self._refs: dict[str, tuple[str, float]] = {}  # models:/NAME@ALIAS -> (concrete, expiry)
        self.reindexer = Reindexer(self)

    @property
    def limits(self) -> Limits:
        return self.settings.limits

    # --- models and embeddings ----------------------------------------------------------

    async def models(self) -> list[ModelCard]:
        return await self.embedder.models()

    async def concrete_model(self, name: str) -> str:
        """A served name as it is; ``models:/NAME@ALIAS`` resolved to ``models:/NAME/VERSION``, its
        ``?backend=`` kept (and checked: an unknown backend is a 422).

        Aliases are looked up again after ``model_alias_ttl_s``, so moving ``champion`` reaches
        new requests within seconds while a burst of requests costs one registry call.
        """
        from counterpoint.infra.tracking import concrete_model_ref, is_registry_ref

        base, backend = split_backend(name)
        if not is_registry_ref(base):
            return name
        now = time.monotonic()
        cached = self._refs.get(base)
        if cached is None or cached[1] <= now:
            concrete = await asyncio.to_thread(concrete_model_ref, base, self.settings.tracking_uri)
            cached = self._refs[base] = (concrete, now + self.settings.model_alias_ttl_s)
        return with_backend(cached[0], backend)

    async def model_card(self, name: str | None) -> ModelCard:
        """The card of a served model, loading a registered one (``models:/...``) on first use."""
        if name is None:
            return (await self.models())[0]
        return await self.embedder.load(await self.concrete_model(name))

    def check_texts(self, texts: Sequence[object], what: str = "input") -> list[str]:
        if not texts:
            raise InvalidInput(f"'{what}' must contain at least one text")
        if len(texts) > self.limits.max_texts_per_request:
            raise LimitExceeded(
                f"'{what}' has {len(texts)} texts; the limit is {self.limits.max_texts_per_request} "
                "per request (setting max_texts_per_request)"
            )
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput(f"'{what}[{i}]' must be a string, got {type(text).__name__}")
            if not text.strip():
                raise InvalidInput(f"'{what}[{i}]' is empty")
            self.check_length(text, f"{what}[{i}]")
        return list(texts)  # type: ignore[arg-type]

    def check_length(self, text: str, where: str) -> None:
        """`LimitExceeded` for a text longer than the max_text_chars limit."""
        if len(text) > self.limits.max_text_chars:
            raise LimitExceeded(
                f"'{where}' has {len(text)} characters; the limit is {self.limits.max_text_chars}"
            )

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        texts = self.check_texts(request.texts())
        card = await self.model_card(request.model)
        if request.dimensions is not None and card.dimensions and request.dimensions > card.dimensions:
            raise InvalidInput(
                f"dimensions={request.dimensions} exceeds the model's {card.dimensions} dimensions"
            )
        result = await self.embedder.embed(texts, card.id)
        vectors = truncate_and_normalize(result.vectors, request.dimensions).astype("<f4", copy=False)
        # Built without validation: float rows stay float32 arrays, which the route writes as JSON
        # itself (routes/embeddings.py); checking 384 floats a vector cost more than the answer.
        items = [
            EmbeddingItem.model_construct(
                index=i,
                embedding=encode_embedding(v) if request.encoding_format == "base64" else v,
            )
            for i, v in enumerate(vectors)
        ]
        usage = Usage(prompt_tokens=result.total_tokens, total_tokens=result.total_tokens)
        return EmbeddingResponse.model_construct(data=items, model=card.id, usage=usage)

    # --- collections ---------------------------------------------------------------------

    async def create_collection(self, request: CollectionCreate) -> CollectionInfo:
        card = await self.model_card(request.model or self.settings.embed_model)
        assert card.dimensions is not None
        physical = f"{request.name}-{uuid.uuid4().hex[:8]}"
        self.registry.create_collection(
            name=request.name,
            physical_name=physical,
            model=card.id,
            dimensions=card.dimensions,
            distance=request.distance,
            payload_indexes=dict(request.payload_indexes),
        )
        spec = CollectionSpec(
            physical,
            card.dimensions,
            request.distance,
            dict(request.payload_indexes),
            IndexSettings(**request.index.model_dump()),
            None if request.lexical is None else Bm25Settings(**request.bm25.model_dump()),
        )
        try:
            await asyncio.to_thread(self.store.create_collection, spec)
        except Exception:
            self.registry.delete_collection(request.name)
            raise
        return await self.describe(request.name)

    async def describe(self, name: str) -> CollectionInfo:
        row = self.registry.get_collection(name)
        count = await asyncio.to_thread(self.store.count, row.physical_name)
        previous = await asyncio.to_thread(self.reindexer.previous, name)
        spec = await asyncio.to_thread(self.store.spec, row.physical_name)
        status = await asyncio.to_thread(self.store.index_status, row.physical_name)
        return CollectionInfo.model_validate(
            {
                **asdict(row),
                "count": count,
                "previous": previous,
                "index": asdict(spec.index),
                "index_status": status["state"],
                "indexed_points": status["indexed_vectors"],
                "lexical": None if spec.lexical is None else "bm25",
                "bm25": None if spec.lexical is None else asdict(spec.lexical),
            }
        )

    async def list_collections(self) -> list[CollectionInfo]:
        return [await self.describe(row.name) for row in self.registry.list_collections()]

    async def delete_collection(self, name: str) -> None:
        """Delete the collection with its previous physical collections; a running re-index stops."""
        row = self.registry.get_collection(name)
        previous = await asyncio.to_thread(self.reindexer.previous, name)
        self.registry.delete_collection(name)
        await asyncio.to_thread(self.store.delete_collection, row.physical_name)
        for physical in previous:
            await asyncio.to_thread(self.store.delete_collection, physical)

    # --- ingest --------------------------------------------------------------------------

    def _check_metadata(self, docs: Sequence[Document], indexes: dict[str, FieldType]) -> None:
        for doc in docs:
            problem = metadata_mismatch(doc.metadata, indexes)
            if problem is not None:
                raise InvalidInput(f"document '{doc.id}': {problem}")

    async def _embed_chunks(self, texts: list[str], model: str) -> np.ndarray:
        step = self.settings.ingest_embed_batch
        chunks = [texts[i : i + step] for i in range(0, len(texts), step)]
        parts: list[Embeddings] = await asyncio.gather(*(self.embedder.embed(c, model) for c in chunks))
        return np.concatenate([p.vectors for p in parts]) if parts else np.zeros((0, 0), np.float32)

    async def ingest(self, name: str, request: IngestRequest) -> IngestResponse:
        """Embed then upsert; nothing is written unless every document embedded (all or nothing)."""
        docs = request.documents
        if len(docs) > self.limits.max_documents_per_ingest:
            raise LimitExceeded(
                f"{len(docs)} documents in one call; the limit is {self.limits.max_documents_per_ingest} "
                "(setting max_documents_per_ingest): send them in batches"
            )
        row = self.registry.get_collection(name)
        self._check_metadata(docs, row.payload_indexes)
        unique = list({doc.id: doc for doc in docs}.values())  # last one wins, like an upsert
        skipped = 0
        if request.skip_existing:
            have = await asyncio.to_thread(self.store.existing_ids, row.physical_name, [d.id for d in unique])
            skipped = len(have)
            unique = [d for d in unique if d.id not in have]
        if unique:
            row = await self._write(name, row, unique)
        count = await asyncio.to_thread(self.store.count, row.physical_name, exact=False)  # fast: see count
        return IngestResponse(
            collection=name, received=len(docs), indexed=len(unique), skipped=skipped, count=count
        )

    async def _write(self, name: str, row: CollectionRecord, docs: Sequence[Document]) -> CollectionRecord:
        """Embed and upsert ``docs``; during a re-index the new collection gets them too.

        The upserts run under the collection row's lock, after checking that the row still names
        the collections they were embedded for: a re-index that started, switched or was undone
        meanwhile (through any replica) makes them embedded again for the row as it is now, so no
        write lands only in a retired collection or misses the one being built.
        """
        while True:
            records = await self.embed_records(docs, row.model)
            mirrored = None
            if row.mirror_model == row.model:  # a re-index that only adds BM25 vectors: the same vectors
                mirrored = records
            elif row.mirror_model is not None:
                mirrored = await self.embed_records(docs, row.mirror_model)
            current = await asyncio.to_thread(self._upsert_locked, name, row, records, mirrored)
            if current is None:
                return row
            row = current

    def _upsert_locked(
        self,
        name: str,
        row: CollectionRecord,
        records: list[VectorRecord],
        mirrored: list[VectorRecord] | None,
    ) -> CollectionRecord | None:
        """Upsert if the row still names ``row``'s collections and return None; else the row now."""
        with self.registry.locked(name) as locked:
            now = locked.record
            if (now.physical_name, now.mirror_physical) != (row.physical_name, row.mirror_physical):
                return now
            if mirrored is not None:
                assert now.mirror_physical is not None  # the same as row's, which had a mirror model
                self.store.upsert(now.mirror_physical, mirrored)
                locked.mark_mirrored(r.id for r in mirrored)  # the re-index's copy must not overwrite
            self.store.upsert(now.physical_name, records)
            return None

    async def embed_records(self, docs: Sequence[Document], model: str) -> list[VectorRecord]:
        """The vector-store records of ``docs``: each embedded with ``model``, its payload kept."""
        vectors = await self._embed_chunks([d.embed_text() for d in docs], model)
        return [VectorRecord(d.id, v, d.payload()) for d, v in zip(docs, vectors, strict=True)]

    # --- search --------------------------------------------------------------------------

    async def search(self, name: str, request: SearchRequest) -> SearchResponse:
        """Vector search, then (with ``rerank``) the cross-encoder reorders the first stage's candidates."""
        started = time.perf_counter()
        if request.top_k > self.limits.max_top_k:
            raise LimitExceeded(f"top_k={request.top_k} exceeds the limit {self.limits.max_top_k}")
        candidates = request.top_k
        if request.rerank:
            self._require_reranker()
            candidates = max(request.top_k, request.rerank_top_k or self.settings.rerank_top_k)
            if candidates > self.limits.max_rerank_documents:
                raise LimitExceeded(
                    f"rerank_top_k={candidates} exceeds the limit {self.limits.max_rerank_documents} "
                    "(setting max_rerank_documents)"
                )
        row = self.registry.get_collection(name)
        if request.filter is not None:
            unknown = request.filter.keys() - set(row.payload_indexes) - {"id"}
            if unknown:
                raise InvalidInput(
                    f"filter on unknown field(s) {sorted(unknown)}; collection '{name}' indexes "
                    f"{sorted(row.payload_indexes)} (declare fields in payload_indexes at creation)"
                )
        retrieval = await self._retrieval(name, row.physical_name, request, candidates)
        timings: dict[str, float] = {}
        vector = None
        if request.vector is not None:
            if len(request.vector) != row.dimensions:
                raise InvalidInput(
                    f"vector has {len(request.vector)} dimensions; collection '{name}' expects {row.dimensions}"
                )
            vector = np.asarray(request.vector, dtype=np.float32)
        else:
            assert request.query is not None
            self.check_texts([request.query], "query")
            if request.mode != "lexical":  # BM25 (with or without MMR) needs no query embedding
                vector = (await self.query_embedder.embed([request.query], row.model)).vectors[0]
                timings["embed_ms"] = _ms_since(started)
        stage = time.perf_counter()
        found = await asyncio.to_thread(
            self.store.search, row.physical_name, vector, candidates, request.filter, None, retrieval
        )
        timings["search_ms"] = _ms_since(stage)
        hits = [_hit(rec) for rec in found]
        reranked_by = None
        if request.rerank and hits:
            stage = time.perf_counter()
            assert request.query is not None
            reranked_by = await self._rerank_model(request.rerank_model)
            texts = [passage_text(h.title or "", h.text or "") for h in hits]
            scores = await self.reranker.rerank(request.query, texts, reranked_by)  # type: ignore[union-attr]
            weight = self.settings.rerank_fusion if request.rerank_fusion is None else request.rerank_fusion
            hits = rescore(hits, scores, weight)
            timings["rerank_ms"] = _ms_since(stage)
        hits = hits[: request.top_k]
        if not request.with_text:
            for hit in hits:
                hit.title = hit.text = None
        return SearchResponse(
            collection=name,
            hits=hits,
            took_ms=_ms_since(started),
            timings=timings,
            reranked_by=reranked_by,
        )

    async def _retrieval(
        self, name: str, physical: str, request: SearchRequest, candidates: int
    ) -> Retrieval | None:
        """What the store retrieves with beyond the dense vector (None: dense only); checked before
        any embedding, so a lexical search of a dense-only collection fails at once."""
        if request.mode == "dense" and request.mmr is None:
            return None
        if request.mode != "dense" and (await asyncio.to_thread(self.store.spec, physical)).lexical is None:
            raise InvalidInput(
                f"collection '{name}' has no lexical (BM25) vectors, so mode '{request.mode}' cannot search it: "
                "create a collection with lexical 'bm25' (the default), or re-index this one with --lexical"
            )
        return Retrieval(
            kind=request.mode,
            text=request.query,
            fusion=request.fusion,
            lexical_weight=0.5 if request.lexical_weight is None else request.lexical_weight,
            candidates=max(request.candidates or Retrieval.candidates, candidates),
            diversity=request.mmr,
        )

    # --- reranking -----------------------------------------------------------------------

    def _require_reranker(self) -> RerankerBackend:
        if self.reranker is None:
            raise Unavailable(
                "no reranker is served: set COUNTERPOINT_RERANK_MODEL to a cross-encoder "
                "(a local directory or models:/NAME@ALIAS) and restart the platform"
            )
        return self.reranker

    async def _rerank_model(self, name: str | None) -> str:
        """The reranker a request names, as served: its concrete version, or the default one."""
        if name is None:
            return (await self._require_reranker().models())[0].id
        return await self.concrete_model(name)

    async def load_model(
        self, name: str, kind: str = "embedding", backend: Backend | None = None
    ) -> ModelCard:
        """Deploy ``name`` to the embedding service, or (``kind="reranker"``) the rerank service;
        with ``backend``, run by it (served as ``NAME?backend=...``)."""
        name = with_backend(name, backend)
        if kind == "reranker":
            return await self._require_reranker().load(await self.concrete_model(name))
        return await self.model_card(name)

    async def rerank_models(self) -> list[ModelCard]:
        return await self.reranker.models() if self.reranker is not None else []

    async def rerank(self, request: RerankRequest) -> RerankResponse:
        """Score every document for the query with the cross-encoder; best first."""
        reranker = self._require_reranker()
        docs = request.items()
        if len(docs) > self.limits.max_rerank_documents:
            raise LimitExceeded(
                f"{len(docs)} documents in one rerank call; the limit is "
                f"{self.limits.max_rerank_documents} (setting max_rerank_documents)"
            )
        self.check_texts([request.query], "query")
        for i, text in enumerate(docs):
            self.check_length(text, f"documents[{i}]")
        model = await self._rerank_model(request.model)
        scores = await reranker.rerank(request.query, docs, model)
        return rerank_response(request, docs, scores, model, self.settings.rerank_max_length)

    # --- health --------------------------------------------------------------------------

    async def health(self) -> dict[str, ComponentHealth]:
        """Each part's status: database, embed, rerank (when configured) and vectors."""
        return await core_health(self)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _hit(rec: Any) -> SearchHit:
    payload = dict(rec.payload)
    payload.pop("id", None)
    text, title = payload.pop("text", None), payload.pop("title", None)
    return SearchHit(
        id=rec.id, score=rec.score, title=title, text=text, metadata=payload, stage_scores=dict(rec.stages)
    )
