"""SDK methods for search: one query, many queries as an evaluation run, and cross-encoder reranking."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from counterpoint.client.transport import Progress, Transport
from counterpoint.schemas import (
    Filter,
    Fusion,
    RerankRequest,
    RerankResponse,
    RetrievalMode,
    SearchRequest,
    SearchResponse,
)


class SearchAPI(Transport):
    """``/v1/collections/{name}/search`` and ``/v1/rerank``."""

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
        mode: RetrievalMode = "dense",
        fusion: Fusion = "dbsf",
        lexical_weight: float | None = None,
        candidates: int | None = None,
        mmr: float | None = None,
    ) -> SearchResponse:
        """Search ``collection``: ``mode`` ``dense`` (the embedding model), ``lexical`` (BM25) or
        ``hybrid`` (both, fused by ``fusion``: ``dbsf``, or ``rrf`` weighted by ``lexical_weight``;
        each hit's ``stage_scores`` has both). ``mmr`` (0-1) diversifies the results over the dense
        vectors of ``candidates``. ``rerank=True`` reorders the first ``rerank_top_k`` candidates with
        the cross-encoder (each hit then keeps its ``first_stage_rank``; ``timings`` has every stage).
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
            mode=mode,
            fusion=fusion,
            lexical_weight=lexical_weight,
            candidates=candidates,
            mmr=mmr,
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
        mode: RetrievalMode = "dense",
        fusion: Fusion = "dbsf",
        lexical_weight: float | None = None,
        mmr: float | None = None,
    ) -> dict[str, dict[str, float]]:
        """Run many text queries (a few at a time) and return a run: qid -> {doc id: score} (with
        ``mmr``, scores that follow the hits' order: N for the first of N, then N - 1, ...)."""

        def one(item: tuple[str, str]) -> tuple[str, dict[str, float]]:
            qid, text = item
            reply = self.search(
                collection, text, top_k=top_k, with_text=False, rerank=rerank, rerank_top_k=rerank_top_k,
                rerank_fusion=rerank_fusion, mode=mode, fusion=fusion, lexical_weight=lexical_weight, mmr=mmr,
            )  # fmt: skip
            if on_progress is not None:
                on_progress(1)
            if mmr is not None:  # MMR's order is not its scores' order: a run is ranked by score
                from counterpoint.evaluation import position_scores  # pytrec_eval: only when needed

                return qid, position_scores([hit.id for hit in reply.hits])
            return qid, {hit.id: hit.score for hit in reply.hits}

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return dict(pool.map(one, queries.items()))
