"""The embedded vector engine in one Serve replica that every gateway replica calls.

The embedded engine (qdrant-edge) admits one process per collection directory. One gateway replica
opens it itself; with ``gateway_replicas`` > 1 the engine moves into this deployment instead and each
gateway replica reaches it through `RemoteVectorStore`, so the replicas share one store (and the
engine's background graph builds run here). With a Qdrant server every replica connects to the
server and this deployment is not built.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from counterpoint.errors import InvalidInput
from counterpoint.infra.vectors.base import Snapshots
from counterpoint.infra.vectors.factory import make_vector_store
from counterpoint.services.vectors.remote import REMOTE_METHODS
from counterpoint.settings import Settings


@serve.deployment(name="vectors", num_replicas=1, max_ongoing_requests=1024)
class VectorStoreDeployment:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = Settings(**settings)
        self.settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        self.store = make_vector_store(self.settings)

    async def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run one store method in a thread (the engine's calls block), so searches run side by side."""
        if method not in REMOTE_METHODS:
            raise InvalidInput(f"the vector store has no method {method!r}")
        return await asyncio.to_thread(getattr(self.store, method), *args, **kwargs)

    def snapshot_format(self) -> str | None:
        return self.store.snapshot_format if isinstance(self.store, Snapshots) else None
