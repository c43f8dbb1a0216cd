"""Bulk upload of precomputed vectors into a collection, without embedding (``POST .../vectors``).

Every check runs before anything is written, so a bad batch is refused whole: the batch size against
``max_vectors_per_upload``, each vector's dimensions against the collection's, NaN and infinity,
duplicate ids, metadata types against the collection's ``payload_indexes``. The stored payload has a
document's shape (id, text, title, metadata), so search hits, filters and backups work unchanged.

A collection being re-indexed refuses uploads (409): the re-index re-embeds stored text with another
model, which a precomputed vector cannot follow. The check is made again under the collection row's
lock as the vectors are written, so a re-index that starts (through any gateway replica) while an
upload is checked refuses it whole too. Imports the counterpoint base, infra's vector records and
`gateway.core` (the type only).
"""

from __future__ import annotations

import asyncio
import binascii
from typing import TYPE_CHECKING, Any

import numpy as np

from counterpoint.errors import Conflict, InvalidInput, LimitExceeded
from counterpoint.infra.vectors.base import VectorRecord
from counterpoint.schemas import IngestResponse, VectorUploadHeader, VectorUploadRequest, metadata_mismatch

if TYPE_CHECKING:
    from counterpoint.infra.db.registry import CollectionRecord
    from counterpoint.services.gateway.core import GatewayCore


def decode_vectors(
    request: VectorUploadHeader, dims: int, name: str, raw: bytes | memoryview | None = None
) -> np.ndarray:
    """The batch's vectors as a ``(len(ids), dims)`` float32 matrix, from ``raw`` (a binary upload's
    float32 bytes) or the request's ``vectors`` / ``vectors_b64``; `InvalidInput` saying what is off."""
    n = len(request.ids)
    what = "the binary vectors"
    if raw is None:
        assert isinstance(request, VectorUploadRequest)
        if request.vectors is not None:
            for i, vector in enumerate(request.vectors):
                if len(vector) != dims:
                    raise InvalidInput(
                        f"vectors[{i}] (id '{request.ids[i]}') has {len(vector)} dimensions; "
                        f"collection '{name}' has {dims}"
                    )
            with np.errstate(over="ignore"):  # a number beyond float32 becomes inf, refused below
                return np.asarray(request.vectors, dtype=np.float32).reshape(n, dims)
        try:
            raw = binascii.a2b_base64(request.vectors_b64 or "", strict_mode=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("vectors_b64 is not valid base64") from None
        what = "vectors_b64"
    expected = n * dims * 4
    if len(raw) != expected:
        per_id = f" ({len(raw) / (4 * n):g} float32 per id)" if len(raw) % 4 == 0 else ""
        raise InvalidInput(
            f"{what} hold {len(raw)} bytes{per_id}; {n} ids x {dims} dimensions of collection "
            f"'{name}' x 4 bytes = {expected}: send little-endian float32 rows of {dims} numbers"
        )
    return np.frombuffer(raw, dtype="<f4").reshape(n, dims)


def check_vectors(ids: list[str], matrix: np.ndarray) -> None:
    """`InvalidInput` for the first vector holding NaN or infinity, or the first repeated id."""
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise InvalidInput(f"vector {row} (id '{ids[row]}') contains NaN or infinity")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        for row, point in enumerate(ids):
            if point in seen:
                raise InvalidInput(
                    f"id '{point}' appears more than once (again at position {row}): ids must be unique"
                )
            seen.add(point)


def payloads_of(
    request: VectorUploadRequest, ids: list[str], indexes: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each point's stored payload, shaped like `Document.payload`; a text or title not given is left out
    rather than stored as null (readers treat both the same, and each stored key costs: a million
    vectors with only ids upsert ~1.4x faster)."""
    if request.payloads is None:
        return [{"id": point} for point in ids]
    payloads = []
    for point, item in zip(ids, request.payloads, strict=True):
        problem = metadata_mismatch(item.metadata, indexes)
        if problem is not None:
            raise InvalidInput(f"id '{point}': {problem}")
        given = {
            key: value for key, value in (("text", item.text), ("title", item.title)) if value is not None
        }
        payloads.append({"id": point, **given, **item.metadata})
    return payloads


def refuse_during_reindex(row: CollectionRecord) -> None:
    if row.reindexing or row.status == "reindexing":
        name = row.name
        raise Conflict(
            f"collection '{name}' is being re-indexed with another model; uploaded vectors come from "
            "one model and cannot follow it: upload after the re-index finishes"
        )


def _upsert_locked(core: GatewayCore, row: CollectionRecord, records: list[VectorRecord]) -> None:
    """Upsert ``records`` under the collection row's lock, if it is still as it was checked."""
    with core.registry.locked(row.name) as locked:
        now = locked.record
        refuse_during_reindex(now)
        if now.physical_name != row.physical_name:
            raise Conflict(
                f"collection '{row.name}' was re-indexed or restored while these vectors were checked: "
                "check its model and dimensions, then upload again"
            )
        core.store.upsert(now.physical_name, records)


async def upload_vectors(
    core: GatewayCore, name: str, request: VectorUploadHeader, raw: bytes | memoryview | None = None
) -> IngestResponse:
    """Check the whole batch, then upsert it (all or nothing); ``skip_existing`` leaves stored ids alone.

    ``request`` is a `VectorUploadRequest` (JSON), or the header of a binary upload whose float32
    vectors are ``raw``."""
    limit = core.limits.max_vectors_per_upload
    if len(request.ids) > limit:
        raise LimitExceeded(
            f"{len(request.ids)} vectors in one call; the limit is {limit} "
            "(setting max_vectors_per_upload): send them in batches"
        )
    row = core.registry.get_collection(name)
    ids = request.id_list()
    matrix = decode_vectors(request, row.dimensions, name, raw)
    check_vectors(ids, matrix)
    payloads = payloads_of(request, ids, row.payload_indexes)
    refuse_during_reindex(row)
    keep = range(len(ids))
    if request.skip_existing:
        have = await asyncio.to_thread(core.store.existing_ids, row.physical_name, ids)
        keep = [i for i, point in enumerate(ids) if point not in have]  # type: ignore[assignment]
    records = [VectorRecord(ids[i], matrix[i], payloads[i]) for i in keep]
    if records:
        await asyncio.to_thread(_upsert_locked, core, row, records)
    count = await asyncio.to_thread(core.store.count, row.physical_name, exact=False)  # fast: see count
    return IngestResponse(
        collection=name, received=len(ids), indexed=len(records), skipped=len(ids) - len(records), count=count
    )
