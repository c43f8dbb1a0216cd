"""SDK methods for collections: create, describe, re-index, ingest documents, search and rerank."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from counterpoint.client.documents import batched, read_jsonl
from counterpoint.client.transport import Progress, Transport
from counterpoint.schemas import (
    CollectionCreate,
    CollectionInfo,
    CollectionList,
    Distance,
    Document,
    FieldType,
    Filter,
    IngestRequest,
    IngestResponse,
    JobInfo,
    RerankRequest,
    RerankResponse,
    SearchRequest,
    SearchResponse,
)


class CollectionsAPI(Transport):
    """``/v1/collections/...`` and ``/v1/rerank``."""

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
        for batch in batched(documents, batch_size):
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
