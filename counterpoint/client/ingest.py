"""SDK methods for putting documents into a collection, in batches, from objects or a JSONL file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from counterpoint.client.documents import batched, read_jsonl
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
