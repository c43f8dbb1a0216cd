"""SDK methods for putting documents into a collection, in batches, from objects or a JSONL file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from counterpoint.client.documents import batched, read_jsonl
from counterpoint.client.in_flight import send_in_flight
from counterpoint.client.transport import Progress, Transport
from counterpoint.schemas import Document, IngestRequest, IngestResponse


class IngestAPI(Transport):
    """``/v1/collections/{name}/documents``."""

    def ingest(
        self,
        collection: str,
        documents: Iterable[Document | Mapping[str, Any]],
        *,
        batch_size: int = 256,
        skip_existing: bool = False,
        on_progress: Progress | None = None,
    ) -> IngestResponse:
        """Send documents in batches, two in flight; each batch is all-or-nothing and ids make retries safe.

        While the gateway stores one batch the embedder already works on the next. The first
        failed batch stops the upload and is raised; the batches before it are stored.
        """
        bodies = (
            IngestRequest(
                documents=[d if isinstance(d, Document) else Document.model_validate(d) for d in batch],
                skip_existing=skip_existing,
            ).model_dump()
            for batch in batched(documents, batch_size)
        )

        def send(body: dict[str, Any]) -> IngestResponse:
            reply = self._request("POST", f"/v1/collections/{collection}/documents", json=body)
            return IngestResponse.model_validate(reply)

        return send_in_flight(collection, bodies, send, on_progress=on_progress)

    def ingest_jsonl(self, collection: str, path: str | Path, **kwargs: Any) -> IngestResponse:
        return self.ingest(collection, read_jsonl(path), **kwargs)
