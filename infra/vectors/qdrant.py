"""Qdrant server (or qdrant-client local mode) vector store through ``qdrant-client``.

The spec is kept in the collection's own metadata, so it survives restarts and is the same
for every gateway replica. The server builds HNSW graphs in the background by itself.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import UnexpectedResponse

from counterpoint.errors import Conflict, InvalidInput, NotFound, Unavailable
from counterpoint.infra.vectors.base import CollectionSpec, ScoredRecord, VectorRecord, point_id
from counterpoint.infra.vectors.common import (
    ID_KEY,
    as_floats,
    check_dimensions,
    check_name,
    check_spec,
    record_payload,
    spec_from_dict,
    spec_to_dict,
    valid_name,
)
from counterpoint.infra.vectors.filters import to_qdrant_filter
from counterpoint.schemas import Filter

METADATA_KEY = "counterpoint_spec"
SNAPSHOT_FILE = "collection.snapshot"
_RETRIEVE_CHUNK = 1024

_DISTANCE = {"cosine": qm.Distance.COSINE, "dot": qm.Distance.DOT, "euclid": qm.Distance.EUCLID}
_DISTANCE_BACK = {v: k for k, v in _DISTANCE.items()}
_SCHEMA = {
    "keyword": qm.PayloadSchemaType.KEYWORD,
    "integer": qm.PayloadSchemaType.INTEGER,
    "float": qm.PayloadSchemaType.FLOAT,
    "bool": qm.PayloadSchemaType.BOOL,
}
_SCHEMA_BACK = {v: k for k, v in _SCHEMA.items()}


class QdrantVectorStore:
    """``VectorStore`` on a ``QdrantClient`` (a server URL, or ``":memory:"`` for tests).

    ``url`` and ``api_key`` (the server's) are needed only for snapshots, which travel over plain HTTP.
    """

    def __init__(self, client: QdrantClient, *, url: str | None = None, api_key: str | None = None) -> None:
        self.client = client
        self.url = url.rstrip("/") if url else None
        self._headers = {"api-key": api_key} if api_key else {}
        self._lock = threading.Lock()
        self._specs: dict[str, CollectionSpec] = {}  # cache: dimension checks without a round trip

    # --- collections ---------------------------------------------------------------------

    def create_collection(self, spec: CollectionSpec) -> None:
        check_spec(spec)
        if self.client.collection_exists(spec.name):
            raise Conflict(f"collection '{spec.name}' already exists")
        with _translated(spec.name):
            self.client.create_collection(
                spec.name,
                vectors_config=qm.VectorParams(size=spec.dimensions, distance=_DISTANCE[spec.distance]),
                metadata={METADATA_KEY: spec_to_dict(spec)},
            )
            with warnings.catch_warnings():  # local mode warns that it ignores payload indexes
                warnings.filterwarnings("ignore", message="Payload indexes have no effect")
                for key, kind in {**spec.payload_indexes, ID_KEY: "keyword"}.items():
                    self.client.create_payload_index(spec.name, key, field_schema=_SCHEMA[kind], wait=True)
        with self._lock:
            self._specs[spec.name] = spec

    def delete_collection(self, name: str) -> None:
        check_name(name)
        with self._lock:
            self._specs.pop(name, None)
        if not self.client.collection_exists(name):
            raise NotFound(f"collection '{name}' does not exist")
        with _translated(name):
            self.client.delete_collection(name)

    def collection_exists(self, name: str) -> bool:
        return valid_name(name) and self.client.collection_exists(name)

    def spec(self, name: str) -> CollectionSpec:
        """The collection's spec, from its metadata (or its config for foreign collections)."""
        check_name(name)
        with self._lock:
            cached = self._specs.get(name)
        if cached is not None:
            return cached
        with _translated(name):
            info = self.client.get_collection(name)
        spec = _spec_of(name, info)
        with self._lock:
            self._specs[name] = spec
        return spec

    # --- points --------------------------------------------------------------------------

    def count(self, name: str) -> int:
        check_name(name)
        with _translated(name):
            return self.client.count(name, exact=True).count

    def upsert(self, name: str, records: Sequence[VectorRecord]) -> None:
        spec = self.spec(name)
        check_dimensions(name, spec.dimensions, [r.vector for r in records])
        if not records:
            return
        points = [
            qm.PointStruct(id=point_id(r.id), vector=as_floats(r.vector), payload=record_payload(r))
            for r in records
        ]
        with _translated(name):
            self.client.upsert(name, points=points, wait=True)

    def existing_ids(self, name: str, ids: Sequence[str]) -> set[str]:
        check_name(name)
        wanted = {point_id(i): i for i in ids}
        keys = list(wanted)
        found: set[str] = set()
        with _translated(name):
            if not keys and not self.client.collection_exists(name):
                raise NotFound(f"collection '{name}' does not exist")
            for start in range(0, len(keys), _RETRIEVE_CHUNK):
                chunk = keys[start : start + _RETRIEVE_CHUNK]
                records = self.client.retrieve(name, ids=chunk, with_payload=False, with_vectors=False)
                found.update(wanted[str(rec.id)] for rec in records)
        return found

    def search(
        self, name: str, vector: Sequence[float], top_k: int, filter: Filter | None = None
    ) -> list[ScoredRecord]:
        if top_k < 1:
            raise InvalidInput(f"top_k must be at least 1, got {top_k}")
        spec = self.spec(name)
        check_dimensions(name, spec.dimensions, [vector])
        with _translated(name):
            response = self.client.query_points(
                name,
                query=as_floats(vector),
                query_filter=to_qdrant_filter(filter),
                limit=top_k,
                with_payload=True,
                with_vectors=False,
            )
        # Qdrant returns best first for every distance (euclid: smallest distance first).
        return [
            ScoredRecord(
                id=str((p.payload or {}).get(ID_KEY, p.id)),
                score=float(p.score),
                payload=dict(p.payload or {}),
            )
            for p in response.points
        ]

    def scroll(
        self, name: str, limit: int = 256, offset: str | None = None
    ) -> tuple[list[ScoredRecord], str | None]:
        if limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        check_name(name)
        with _translated(name):
            points, after = self.client.scroll(
                name, limit=limit, offset=offset, with_payload=True, with_vectors=False
            )
        records = [
            ScoredRecord(
                id=str((p.payload or {}).get(ID_KEY, p.id)), score=0.0, payload=dict(p.payload or {})
            )
            for p in points
        ]
        return records, None if after is None else str(after)

    # --- maintenance ---------------------------------------------------------------------

    def optimize(self, name: str) -> bool:
        """Nothing to do: the server optimizes and indexes in the background. Always False."""
        if not self.collection_exists(name):
            raise NotFound(f"collection '{name}' does not exist")
        return False

    # --- snapshots (backups) --------------------------------------------------------------

    snapshot_format = "qdrant-snapshot"

    def _server(self) -> str:
        if self.url is None:
            raise Unavailable("collection snapshots need a Qdrant server (COUNTERPOINT_QDRANT_URL)")
        return self.url

    def export_snapshot(self, name: str, dest: Path) -> int:
        """Download a native Qdrant snapshot of ``name`` to ``dest/collection.snapshot``; return the count.

        The server takes the snapshot (consistent, indexes included), we stream it down and delete it
        from the server. A multi-node cluster holds a collection's shards on several nodes: this
        snapshots the node at ``url`` only.
        """
        check_name(name)
        server = self._server()
        count = self.count(name)
        with _translated(name):
            taken = self.client.create_snapshot(name, wait=True)
        if taken is None:
            raise Unavailable(f"Qdrant did not return a snapshot of collection '{name}'")
        try:
            url = f"{server}/collections/{name}/snapshots/{taken.name}"
            with httpx.stream("GET", url, headers=self._headers, timeout=None) as reply:
                if reply.status_code >= 400:
                    reply.read()
                    raise Unavailable(
                        f"downloading the snapshot failed: HTTP {reply.status_code} {reply.text[:300]}"
                    )
                with open(Path(dest) / SNAPSHOT_FILE, "wb") as out:
                    for chunk in reply.iter_bytes(1 << 20):
                        out.write(chunk)
        finally:
            self.client.delete_snapshot(name, taken.name, wait=True)
        return count

    def import_snapshot(self, spec: CollectionSpec, source: Path) -> None:
        """Create collection ``spec.name`` from a snapshot ``export_snapshot`` wrote to ``source``.

        The snapshot is uploaded to the server (``/snapshots/upload``); a vector size or distance that
        does not match the spec is an ``InvalidInput`` and the half-restored collection is deleted.
        """
        check_spec(spec)
        server = self._server()
        snapshot = Path(source) / SNAPSHOT_FILE
        if not snapshot.is_file():
            raise InvalidInput(f"the backup holds no Qdrant snapshot ({SNAPSHOT_FILE})")
        if self.client.collection_exists(spec.name):
            raise Conflict(f"collection '{spec.name}' already exists")
        try:
            with open(snapshot, "rb") as handle:
                reply = httpx.post(
                    f"{server}/collections/{spec.name}/snapshots/upload",
                    params={"priority": "snapshot", "wait": "true"},
                    files={"snapshot": (SNAPSHOT_FILE, handle, "application/octet-stream")},
                    headers=self._headers,
                    timeout=None,
                )
            if reply.status_code >= 400:
                raise InvalidInput(
                    f"Qdrant refused the snapshot: HTTP {reply.status_code} {reply.text[:300]}"
                )
            info = self.client.get_collection(spec.name)
            vectors = info.config.params.vectors
            if not isinstance(vectors, qm.VectorParams) or (vectors.size, vectors.distance) != (
                spec.dimensions,
                _DISTANCE[spec.distance],
            ):
                raise InvalidInput(
                    f"the snapshot's vectors ({vectors}) do not match {spec.dimensions}-d {spec.distance}"
                )
            self.client.update_collection(spec.name, metadata={METADATA_KEY: spec_to_dict(spec)})
            have = set(info.payload_schema or {})
            for key, kind in {**spec.payload_indexes, ID_KEY: "keyword"}.items():
                if key not in have:
                    self.client.create_payload_index(spec.name, key, field_schema=_SCHEMA[kind], wait=True)
        except BaseException:
            if self.client.collection_exists(spec.name):
                self.client.delete_collection(spec.name)
            raise
        with self._lock:
            self._specs[spec.name] = spec

    def close(self) -> None:
        self.client.close()


def _spec_of(name: str, info: qm.CollectionInfo) -> CollectionSpec:
    stored = (info.config.metadata or {}).get(METADATA_KEY)
    if isinstance(stored, dict):
        return spec_from_dict({**stored, "name": name})
    vectors = info.config.params.vectors
    if not isinstance(vectors, qm.VectorParams):
        raise InvalidInput(f"collection '{name}' uses named vectors, which Counterpoint does not support")
    indexes = {
        key: _SCHEMA_BACK[schema.data_type]
        for key, schema in (info.payload_schema or {}).items()
        if key != ID_KEY and schema.data_type in _SCHEMA_BACK
    }
    return CollectionSpec(name, vectors.size, _DISTANCE_BACK.get(vectors.distance, "cosine"), indexes)


@contextmanager
def _translated(name: str) -> Iterator[None]:
    """Turn the client's "no such collection" / "already exists" errors into ours."""
    try:
        yield
    except UnexpectedResponse as exc:
        if exc.status_code == 404:
            raise NotFound(f"collection '{name}' does not exist") from exc
        if exc.status_code == 409:
            raise Conflict(f"collection '{name}' already exists") from exc
        raise
    except ValueError as exc:  # local mode raises ValueError with these messages
        message = str(exc)
        if "not found" in message:
            raise NotFound(f"collection '{name}' does not exist") from exc
        if "already exists" in message:
            raise Conflict(f"collection '{name}' already exists") from exc
        raise
