"""SDK methods for managing collections: create, list, describe, check recall, tune search, re-index, delete."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from counterpoint.client.transport import Transport
from counterpoint.schemas import (
    Bm25Config,
    CollectionCreate,
    CollectionInfo,
    CollectionList,
    Distance,
    FieldType,
    IndexConfig,
    JobInfo,
    Lexical,
    RecallCheckRequest,
    RecallReport,
    ReindexRequest,
    SearchSettingsUpdate,
)


class CollectionsAPI(Transport):
    """``/v1/collections`` and ``/v1/collections/{name}[/reindex|/previous|/check-recall|/index]``."""

    def list_collections(self) -> list[CollectionInfo]:
        return CollectionList.model_validate(self._request("GET", "/v1/collections")).collections

    def create_collection(
        self,
        name: str,
        *,
        model: str | None = None,
        distance: Distance = "cosine",
        payload_indexes: Mapping[str, FieldType] | None = None,
        index: IndexConfig | Mapping[str, Any] | None = None,
        lexical: Lexical | None = "bm25",
        bm25: Bm25Config | Mapping[str, Any] | None = None,
    ) -> CollectionInfo:
        """Create an empty collection; ``index``: its HNSW and storage settings (``m``, ``ef_construct``,
        ``hnsw_ef``, ``quantization``, ``oversampling``, ``on_disk``, ``datatype``; unset ones take the
        defaults).
        ``lexical`` ``"bm25"`` (the default) gives it BM25 vectors for lexical and hybrid search, with
        ``bm25``'s ``k``, ``b`` and ``avg_len``; None: dense vectors only."""
        body = CollectionCreate(
            name=name,
            model=model,
            distance=distance,
            payload_indexes=dict(payload_indexes or {}),
            index=IndexConfig.model_validate(index or {}),
            lexical=lexical,
            bm25=Bm25Config.model_validate(bm25 or {}),
        )
        payload = {**body.model_dump(exclude_none=True), "lexical": lexical}  # null is meaningful here
        data = self._request("POST", "/v1/collections", json=payload)
        return CollectionInfo.model_validate(data)

    def get_collection(self, name: str) -> CollectionInfo:
        return CollectionInfo.model_validate(self._request("GET", f"/v1/collections/{name}"))

    def check_recall(self, name: str, *, samples: int = 100, top_k: int = 10) -> RecallReport:
        """recall@``top_k`` of collection ``name``'s approximate search against exact search, on
        ``samples`` of its stored vectors, with its latency, per search ef, and the ef to reach 0.98."""
        body = RecallCheckRequest(samples=samples, top_k=top_k)
        data = self._request("POST", f"/v1/collections/{name}/check-recall", json=body.model_dump())
        return RecallReport.model_validate(data)

    def tune_search(
        self, name: str, *, hnsw_ef: int | None = None, oversampling: float | None = None
    ) -> CollectionInfo:
        """Change collection ``name``'s search ef and/or oversampling (e.g. to what ``check_recall``
        suggests); searches use them at once and the graph stays as built. Unset ones are kept."""
        body = SearchSettingsUpdate(hnsw_ef=hnsw_ef, oversampling=oversampling)
        data = self._request(
            "PATCH", f"/v1/collections/{name}/index", json=body.model_dump(exclude_none=True)
        )
        return CollectionInfo.model_validate(data)

    def reindex(self, name: str, model: str | None = None, *, lexical: Lexical | None = None) -> JobInfo:
        """Re-embed collection ``name`` with ``model`` (default: its own) in the background (a job: follow
        it with `follow_job`); searches keep answering from the current collection until the switch.
        ``lexical="bm25"`` gives the new copy BM25 vectors (lexical and hybrid search)."""
        body = ReindexRequest(model=model, lexical=lexical).model_dump(exclude_none=True)
        data = self._request("POST", f"/v1/collections/{name}/reindex", json=body)
        return JobInfo.model_validate(data)

    def delete_previous(self, name: str) -> list[str]:
        """Delete the physical collections kept from before ``name``'s re-indexes; their names."""
        return list(self._request("DELETE", f"/v1/collections/{name}/previous")["deleted"])

    def delete_collection(self, name: str) -> None:
        self._request("DELETE", f"/v1/collections/{name}")
