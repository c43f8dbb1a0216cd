"""SDK methods for managing collections: create, list, describe, re-index and delete them."""

from __future__ import annotations

from collections.abc import Mapping

from counterpoint.client.transport import Transport
from counterpoint.schemas import (
    CollectionCreate,
    CollectionInfo,
    CollectionList,
    Distance,
    FieldType,
    JobInfo,
)


class CollectionsAPI(Transport):
    """``/v1/collections`` and ``/v1/collections/{name}[/reindex|/previous]``."""

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
