"""Qdrant server (or qdrant-client local mode) vector store through ``qdrant-client``.

The spec is kept in the collection's own metadata, so it survives restarts and is the same
for every gateway replica. The server builds HNSW graphs in the background by itself; a spec's
index settings become the collection's HNSW, quantization and on-disk config, and its ``hnsw_ef``
and rescoring go with every search.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import qdrant_edge as qe
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import UnexpectedResponse

from counterpoint.errors import Conflict, InvalidInput, NotFound, Unavailable
from counterpoint.infra.vectors.backend import (
    RRF_K,
    Point,
    VectorStoreBackend,
    dense_of,
    indexed_fields,
    rrf_weights,
    with_stages,
)
from counterpoint.infra.vectors.base import CollectionSpec, IndexSettings, Retrieval, ScoredRecord, SearchMode
from counterpoint.infra.vectors.common import ID_KEY, check_name, spec_from_dict, spec_to_dict
from counterpoint.infra.vectors.filters import to_qdrant_filter
from counterpoint.infra.vectors.lexical import LEXICAL_VECTOR
from counterpoint.schemas import Filter

METADATA_KEY = "counterpoint_spec"
SNAPSHOT_FILE = "collection.snapshot"

_DISTANCE = {"cosine": qm.Distance.COSINE, "dot": qm.Distance.DOT, "euclid": qm.Distance.EUCLID}
_DISTANCE_BACK = {v: k for k, v in _DISTANCE.items()}
_SCHEMA = {
    "keyword": qm.PayloadSchemaType.KEYWORD,
    "integer": qm.PayloadSchemaType.INTEGER,
    "float": qm.PayloadSchemaType.FLOAT,
    "bool": qm.PayloadSchemaType.BOOL,
}
_SCHEMA_BACK = {v: k for k, v in _SCHEMA.items()}


class QdrantVectorStore(VectorStoreBackend):
    """``VectorStore`` on a ``QdrantClient`` (a server URL, or ``":memory:"`` for tests).

    ``url`` and ``api_key`` (the server's) are needed only for snapshots, which travel over plain HTTP.
    """

    snapshot_format = "qdrant-snapshot"

    def __init__(self, client: QdrantClient, *, url: str | None = None, api_key: str | None = None) -> None:
        self.client = client
        self.url = url.rstrip("/") if url else None
        self._headers = {"api-key": api_key} if api_key else {}
        self._lock = threading.Lock()
        self._specs: dict[str, CollectionSpec] = {}  # cache: dimension checks without a round trip

    # --- collections ---------------------------------------------------------------------

    def _create(self, spec: CollectionSpec) -> None:
        if self.client.collection_exists(spec.name):
            raise Conflict(f"collection '{spec.name}' already exists")
        with _translated(spec.name):
            self.client.create_collection(
                spec.name,
                vectors_config=qm.VectorParams(
                    size=spec.dimensions,
                    distance=_DISTANCE[spec.distance],
                    on_disk=spec.index.on_disk,
                    datatype=None if spec.index.datatype is None else qm.Datatype(spec.index.datatype),
                ),
                hnsw_config=qm.HnswConfigDiff(m=spec.index.m, ef_construct=spec.index.ef_construct),
                quantization_config=_quantization(spec.index),
                sparse_vectors_config=(
                    None
                    if spec.lexical is None
                    else {LEXICAL_VECTOR: qm.SparseVectorParams(modifier=qm.Modifier.IDF)}
                ),
                metadata={METADATA_KEY: spec_to_dict(spec)},
            )
            self._add_indexes(spec)
        with self._lock:
            self._specs[spec.name] = spec

    def _add_indexes(self, spec: CollectionSpec, have: Iterable[str] = ()) -> None:
        """Create the payload indexes ``spec`` asks for that the collection does not ``have`` yet."""
        have = set(have)
        with warnings.catch_warnings():  # local mode warns that it ignores payload indexes
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            for key, kind in indexed_fields(spec).items():
                if key not in have:
                    self.client.create_payload_index(spec.name, key, field_schema=_SCHEMA[kind], wait=True)

    def _set_spec(self, spec: CollectionSpec) -> None:
        with _translated(spec.name):
            self.client.update_collection(spec.name, metadata={METADATA_KEY: spec_to_dict(spec)})
        with self._lock:
            self._specs[spec.name] = spec

    def _delete(self, name: str) -> None:
        with self._lock:
            self._specs.pop(name, None)
        if not self.client.collection_exists(name):
            raise NotFound(f"collection '{name}' does not exist")
        with _translated(name):
            self.client.delete_collection(name)

    def _exists(self, name: str) -> bool:
        return self.client.collection_exists(name)

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

    def _count(self, name: str, exact: bool) -> int:
        with _translated(name):
            return self.client.count(name, exact=exact).count

    def _put(self, name: str, points: list[Point]) -> None:
        structs = [
            qm.PointStruct(
                id=pid,
                vector=vector if sparse is None else {"": vector, LEXICAL_VECTOR: _sparse(sparse)},
                payload=payload,
            )
            for pid, vector, sparse, payload in points
        ]
        with _translated(name):
            self.client.upsert(name, points=structs, wait=True)

    def _retrieve(self, name: str, point_ids: list[str]) -> Iterable[Any]:
        with _translated(name):
            return self.client.retrieve(name, ids=point_ids, with_payload=False, with_vectors=False)

    def _nearest(
        self, name: str, vector: list[float], top_k: int, filter: Filter | None, mode: SearchMode | None
    ) -> Iterable[Any]:
        params = _search_params(self.spec(name).index, mode or SearchMode())
        with _translated(name):
            return self.client.query_points(
                name,
                query=vector,
                query_filter=to_qdrant_filter(filter),
                limit=top_k,
                with_payload=True,
                with_vectors=False,
                search_params=params,
            ).points

    def _retrieve_with(
        self,
        name: str,
        vector: list[float] | None,
        sparse: qe.SparseVector | None,
        top_k: int,
        filter: Filter | None,
        mode: SearchMode | None,
        retrieval: Retrieval,
    ) -> list[ScoredRecord]:
        """One batch: the final query (BM25, or both stages fused over their prefetched candidates) and,
        for a hybrid search, each stage's own candidates, whose scores go with the hits (as the embedded
        engine)."""
        query_filter = to_qdrant_filter(filter)
        candidates = max(retrieval.candidates, top_k)
        params = _search_params(self.spec(name).index, mode or SearchMode())
        stages: dict[str, qm.Prefetch] = {}
        if vector is not None and retrieval.kind != "lexical":
            stages["dense"] = qm.Prefetch(query=vector, limit=candidates, params=params, filter=query_filter)
        if sparse is not None:
            stages["lexical"] = qm.Prefetch(
                query=_sparse(sparse), using=LEXICAL_VECTOR, limit=candidates, filter=query_filter
            )
        first = next(iter(stages.values()))
        query: Any = first.query
        using, prefetch = first.using, None
        if retrieval.kind == "hybrid":
            query = (
                qm.RrfQuery(rrf=qm.Rrf(k=RRF_K, weights=rrf_weights(retrieval.lexical_weight)))
                if retrieval.fusion == "rrf"
                else qm.FusionQuery(fusion=qm.Fusion.DBSF)
            )
            using, prefetch = None, list(stages.values())
        requests = [
            qm.QueryRequest(
                query=query,
                using=using,
                prefetch=prefetch,
                filter=query_filter,
                limit=top_k,
                with_payload=True,
            )
        ]
        if retrieval.kind == "hybrid":
            requests += [
                qm.QueryRequest(
                    query=stage.query,
                    using=stage.using,
                    filter=query_filter,
                    limit=candidates,
                    params=stage.params,
                )
                for stage in stages.values()
            ]
        with _translated(name):
            results = self.client.query_batch_points(name, requests=requests)
        return with_stages(
            results[0].points, dict(zip(stages, (r.points for r in results[1:]), strict=False))
        )

    def _dense_vectors(self, name: str, point_ids: list[str]) -> list[list[float]]:
        with _translated(name):
            points = self.client.retrieve(name, ids=point_ids, with_payload=False, with_vectors=True)
        by_id = {str(p.id): dense_of(p.vector) for p in points}
        return [by_id[pid] for pid in point_ids]

    def _sample(self, name: str, limit: int) -> list[list[float]]:
        with _translated(name):
            points, _ = self.client.scroll(name, limit=limit, with_payload=False, with_vectors=True)
        return [dense_of(point.vector) for point in points]

    def _page(
        self, name: str, limit: int, offset: str | None, vectors: bool | list[str]
    ) -> tuple[Iterable[Any], Any]:
        with _translated(name):
            return self.client.scroll(
                name, limit=limit, offset=offset, with_payload=True, with_vectors=vectors
            )

    # --- maintenance ---------------------------------------------------------------------

    def index_status(self, name: str) -> dict[str, Any]:
        """The server's own counts; ``indexing`` while its optimizer runs (status not green)."""
        with _translated(name):
            info = self.client.get_collection(name)
            indexed = info.indexed_vectors_count or 0
            if indexed and self.spec(name).lexical is not None:  # sparse vectors count as indexed: not ours
                has_sparse = qm.Filter(must=[qm.HasVectorCondition(has_vector=LEXICAL_VECTOR)])
                indexed = max(
                    0, indexed - self.client.count(name, count_filter=has_sparse, exact=False).count
                )
        return {
            "points": info.points_count or 0,
            "segments": info.segments_count,
            "indexed_vectors": indexed,
            "state": "ready" if info.status == qm.CollectionStatus.GREEN else "indexing",
        }

    def optimize(self, name: str) -> bool:
        """Nothing to do: the server optimizes and indexes in the background. Always False."""
        self._require(name)
        return False

    # --- snapshots (backups) --------------------------------------------------------------

    def _server(self) -> str:
        if self.url is None:
            raise Unavailable("collection snapshots need a Qdrant server (COUNTERPOINT_QDRANT_URL)")
        return self.url

    def _export(self, name: str, dest: Path) -> int:
        """Download a native Qdrant snapshot of ``name`` to ``dest/collection.snapshot``; return the count.

        The server takes the snapshot (consistent, indexes included), we stream it down and delete it
        from the server. A multi-node cluster holds a collection's shards on several nodes: this
        snapshots the node at ``url`` only.
        """
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
                with open(dest / SNAPSHOT_FILE, "wb") as out:
                    for chunk in reply.iter_bytes(1 << 20):
                        out.write(chunk)
        finally:
            self.client.delete_snapshot(name, taken.name, wait=True)
        return count

    def _import(self, spec: CollectionSpec, source: Path) -> None:
        """Create collection ``spec.name`` from a snapshot ``export_snapshot`` wrote to ``source``.

        The snapshot is uploaded to the server (``/snapshots/upload``); a vector size or distance that
        does not match the spec is an ``InvalidInput`` and the half-restored collection is deleted.
        """
        server = self._server()
        snapshot = source / SNAPSHOT_FILE
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
            self._add_indexes(spec, have=info.payload_schema or {})
        except BaseException:
            if self.client.collection_exists(spec.name):
                self.client.delete_collection(spec.name)
            raise
        with self._lock:
            self._specs[spec.name] = spec

    def close(self) -> None:
        self.client.close()


def _sparse(vector: qe.SparseVector) -> qm.SparseVector:
    """The embedded engine's BM25 vector (what ``lexical`` makes) in the client's type."""
    return qm.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _quantization(index: IndexSettings) -> qm.ScalarQuantization | None:
    """int8 scalar quantization kept in RAM, as the embedded engine does it."""
    if not index.quantization:
        return None
    return qm.ScalarQuantization(
        scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, quantile=0.99, always_ram=True)
    )


def _search_params(index: IndexSettings, mode: SearchMode) -> qm.SearchParams | None:
    """The collection's ``hnsw_ef`` and rescoring, or an exact search that ignores the int8 copy;
    None for the server's defaults (local mode warns about any search params)."""
    if not (mode.exact or mode.hnsw_ef or index.hnsw_ef or index.quantization):
        return None
    quantization = None
    if index.quantization:
        quantization = (
            qm.QuantizationSearchParams(ignore=True)
            if mode.exact
            else qm.QuantizationSearchParams(rescore=True, oversampling=index.oversampling or 2.0)
        )
    return qm.SearchParams(hnsw_ef=mode.hnsw_ef or index.hnsw_ef, exact=mode.exact, quantization=quantization)


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
