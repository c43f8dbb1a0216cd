"""SDK methods for precomputed vectors: one batch from memory, or a whole file streamed in batches.

`upload_vectors` reads the file twice: once to check all of it against the collection (so a bad file
uploads nothing), then to send it, two batches in flight (`send_in_flight`) so reading here overlaps with the
gateway's writes. Batches go to ``.../vectors/binary`` (a JSON header line, then raw float32: no base64 to
encode or decode). They are idempotent by id; ``resume=True`` skips the ids already stored, so a
re-run after a crash sends only what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from counterpoint.client.in_flight import send_in_flight
from counterpoint.client.transport import Progress, Transport
from counterpoint.client.vector_files import check_vector_file, open_vector_file
from counterpoint.errors import InvalidInput
from counterpoint.schemas import CollectionInfo, IngestResponse, VectorPayload

MAX_BATCH_BYTES = 48 << 20
"""Vector bytes per request at most (under the gateway's default 64 MiB body limit)."""
BINARY_HEADERS = {"Content-Type": "application/octet-stream"}


def _body(
    ids: Sequence[str],
    vectors: np.ndarray,
    payloads: Sequence[Mapping[str, Any]] | None,
    skip_existing: bool,
) -> bytes:
    """A binary upload's body: the JSON header line, then the vectors as little-endian float32."""
    head: dict[str, Any] = {"ids": list(ids), "skip_existing": skip_existing}
    if payloads is not None and any(payloads):
        head["payloads"] = [dict(p) for p in payloads]
    raw = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
    return b"".join((json.dumps(head).encode(), b"\n", raw))


class VectorsAPI(Transport):
    """``/v1/collections/{name}/vectors``."""

    def upsert_vectors(
        self,
        collection: str,
        ids: Sequence[str | int],
        vectors: np.ndarray | Sequence[Sequence[float]],
        payloads: Sequence[VectorPayload | Mapping[str, Any]] | None = None,
        *,
        skip_existing: bool = False,
    ) -> IngestResponse:
        """Store one batch of precomputed vectors as they are (row i for ``ids[i]``), all or nothing.

        ``payloads``: one ``{text?, title?, metadata?}`` per id. The gateway refuses the whole batch
        (`InvalidInput`) for wrong dimensions, NaN/inf, a repeated id or metadata of the wrong type.
        """
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or len(matrix) != len(ids):
            raise InvalidInput(f"vectors of shape {matrix.shape} for {len(ids)} ids: pass one row per id")
        items = None
        if payloads is not None:
            items = [
                (p if isinstance(p, VectorPayload) else VectorPayload.model_validate(p)).model_dump(
                    exclude_defaults=True
                )
                for p in payloads
            ]
        return self._send_vectors(collection, _body([str(i) for i in ids], matrix, items, skip_existing))

    def _send_vectors(self, collection: str, body: bytes) -> IngestResponse:
        data = self._request(
            "POST", f"/v1/collections/{collection}/vectors/binary", content=body, headers=BINARY_HEADERS
        )
        return IngestResponse.model_validate(data)

    def upload_vectors(
        self,
        collection: str,
        source: str | Path,
        *,
        payloads: str | Path | None = None,
        batch_size: int = 1000,
        resume: bool = False,
        on_progress: Progress | None = None,
        on_checked: Callable[[int], None] | None = None,
    ) -> IngestResponse:
        """Upload a file of precomputed vectors into ``collection``, without embedding anything.

        ``source``: a ``.jsonl`` file (``id``, ``vector``, optional ``text``, ``title``, ``metadata``
        per line), a ``.npy`` matrix (then ``payloads`` is a JSONL file whose line i holds row i's
        ``id`` and optional text/title/metadata) or a ``.parquet`` file (columns ``id``, ``vector``,
        optional ``text``, ``title``, ``metadata``; other columns go into the metadata).

        The whole file is checked first against the collection (dimensions, NaN/inf, ids repeated
        anywhere in it, metadata types, truncated or corrupt files): any problem raises
        `InvalidInput` naming its line or row, and nothing is sent. ``on_checked`` then gets the
        number of points; ``on_progress`` the size of each batch stored. ``resume`` skips ids
        already in the collection (re-run an interrupted upload with it).
        """
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be at least 1, got {batch_size}")
        info = CollectionInfo.model_validate(self._request("GET", f"/v1/collections/{collection}"))
        file = open_vector_file(source, payloads)
        total = check_vector_file(file, info.dimensions, info.payload_indexes)
        if on_checked is not None:
            on_checked(total)
        size = max(1, min(batch_size, MAX_BATCH_BYTES // (4 * info.dimensions)))
        bodies = (
            _body(batch.ids, batch.vectors, batch.payloads, resume)
            for batch in file.batches(size, info.dimensions)
        )
        send = partial(self._send_vectors, collection)
        return send_in_flight(collection, bodies, send, on_progress=on_progress)
