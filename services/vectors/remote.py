"""`RemoteVectorStore`: a `VectorStore` whose calls run in the `vectors` deployment.

Every method blocks until the deployment answers, like the embedded engine's own calls, so the
gateway keeps calling the store from worker threads (``asyncio.to_thread``) as it does locally. Errors
of the store (a missing collection, bad input) arrive as themselves; a deployment that is down or
restarting becomes `Unavailable` (503) naming the vector store.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from counterpoint.errors import CounterpointError
from counterpoint.infra.vectors.base import CollectionSpec, Retrieval, ScoredRecord, SearchMode, VectorRecord
from counterpoint.schemas import Filter
from counterpoint.services.outages import as_unavailable

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

REMOTE_METHODS = frozenset(
    {
        "create_collection",
        "spec",
        "delete_collection",
        "collection_exists",
        "count",
        "upsert",
        "existing_ids",
        "search",
        "set_search",
        "index_status",
        "sample_vectors",
        "scroll",
        "export_snapshot",
        "import_snapshot",
    }
)
"""What a gateway replica may ask of the shared store: the `VectorStore` and `Snapshots` methods."""


class RemoteVectorStore:
    """The `VectorStore` (and `Snapshots`, when the engine has them) behind a `vectors` handle."""

    PART = "the vector store"

    def __init__(self, handle: DeploymentHandle, *, timeout_s: float | None = None) -> None:
        self.handle = handle
        self.timeout_s = timeout_s
        self._format: str | None = None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.handle.call.remote(method, args, kwargs).result(timeout_s=self.timeout_s)
        except Exception as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, CounterpointError):  # the store's own error, as the local engine raises it
                raise cause from None
            outage = as_unavailable(exc, self.PART)
            if outage is None:
                raise
            raise outage from exc

    @property
    def snapshot_format(self) -> str:
        if self._format is None:
            self._format = self.handle.snapshot_format.remote().result(timeout_s=self.timeout_s) or ""
        return self._format

    def create_collection(self, spec: CollectionSpec) -> None:
        self._call("create_collection", spec)

    def spec(self, name: str) -> CollectionSpec:
        return self._call("spec", name)  # type: ignore[no-any-return]

    def delete_collection(self, name: str) -> None:
        self._call("delete_collection", name)

    def collection_exists(self, name: str) -> bool:
        return bool(self._call("collection_exists", name))

    def count(self, name: str, *, exact: bool = True) -> int:
        return int(self._call("count", name, exact=exact))

    def upsert(self, name: str, records: Sequence[VectorRecord]) -> None:
        self._call("upsert", name, list(records))

    def existing_ids(self, name: str, ids: Sequence[str]) -> set[str]:
        return set(self._call("existing_ids", name, list(ids)))

    def search(
        self,
        name: str,
        vector: Sequence[float] | None,
        top_k: int,
        filter: Filter | None = None,
        mode: SearchMode | None = None,
        retrieval: Retrieval | None = None,
    ) -> list[ScoredRecord]:
        return self._call("search", name, vector, top_k, filter, mode, retrieval)  # type: ignore[no-any-return]

    def set_search(
        self, name: str, *, hnsw_ef: int | None = None, oversampling: float | None = None
    ) -> CollectionSpec:
        return self._call("set_search", name, hnsw_ef=hnsw_ef, oversampling=oversampling)  # type: ignore[no-any-return]

    def index_status(self, name: str) -> dict[str, Any]:
        return self._call("index_status", name)  # type: ignore[no-any-return]

    def sample_vectors(self, name: str, limit: int) -> list[list[float]]:
        return self._call("sample_vectors", name, limit)  # type: ignore[no-any-return]

    def scroll(
        self,
        name: str,
        limit: int = 256,
        offset: str | None = None,
        *,
        with_sparse: bool = False,
        with_vectors: bool = False,
    ) -> tuple[list[ScoredRecord], str | None]:
        return self._call("scroll", name, limit, offset, with_sparse=with_sparse, with_vectors=with_vectors)  # type: ignore[no-any-return]

    def export_snapshot(self, name: str, dest: Path) -> int:
        """Written by the deployment's process: ``dest`` must be on a disk it shares (one machine)."""
        return int(self._call("export_snapshot", name, dest))

    def import_snapshot(self, spec: CollectionSpec, source: Path) -> None:
        self._call("import_snapshot", spec, source)

    def close(self) -> None:
        """The deployment owns the engine; nothing to close here."""
