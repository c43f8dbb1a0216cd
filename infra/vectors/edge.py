"""Embedded Qdrant (``qdrant-edge``) vector store: one engine shard per collection on local disk.

Each collection is a directory under ``root`` (layout: :mod:`counterpoint.infra.vectors.edge_shard`).
Points are searchable as soon as ``upsert`` returns: new points land in an appendable segment
that is searched exactly (brute force, or through a payload index when a filter is selective).
The engine has no background optimizer: the HNSW graph is built by ``optimize(name)``, which
the store's :class:`~counterpoint.infra.vectors.edge_indexer.BackgroundIndexer` runs after ingest
when given an ``IndexPolicy`` (the platform does), or the caller runs by hand. ``EdgeShard.optimize``
holds the GIL for its whole run (minutes for 100k vectors), so by default it runs in a child process
on a copy of the shard and the copy is swapped in; searches and upserts go on meanwhile (upserts
made during the build are replayed into the copy before the swap).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from counterpoint.errors import Conflict, InvalidInput, NotFound, Unavailable
from counterpoint.infra.sparse import copy_tree_sparse
from counterpoint.infra.vectors.backend import (
    RRF_K,
    Point,
    VectorStoreBackend,
    dense_of,
    indexed_fields,
    rrf_weights,
    with_stages,
)
from counterpoint.infra.vectors.base import CollectionSpec, Retrieval, ScoredRecord, SearchMode
from counterpoint.infra.vectors.common import check_name, spec_from_dict, spec_to_dict
from counterpoint.infra.vectors.edge_indexer import BackgroundIndexer, IndexPolicy
from counterpoint.infra.vectors.edge_shard import (
    OLD_DIR,
    OPTIMIZE_CHILD,
    SHARD_DIR,
    SPEC_FILE,
    WORK_DIR,
    OpenShard,
    return_freed_memory,
    shard_records,
    write_json,
)
from counterpoint.infra.vectors.edge_tuning import SCHEMA, EdgeTuning
from counterpoint.infra.vectors.filters import to_edge_filter
from counterpoint.infra.vectors.lexical import LEXICAL_VECTOR
from counterpoint.schemas import Filter

__all__ = ["SHARD_DIR", "SPEC_FILE", "EdgeTuning", "EdgeVectorStore", "IndexPolicy", "shard_records"]


def _add_indexes(shard: qe.EdgeShard, spec: CollectionSpec, have: Iterable[str] = ()) -> None:
    """Create the payload indexes ``spec`` asks for that the shard does not ``have`` yet."""
    have = set(have)
    for key, kind in indexed_fields(spec).items():
        if key not in have:
            shard.update(qe.UpdateOperation.create_field_index(key, SCHEMA[kind]))


class EdgeVectorStore(VectorStoreBackend):
    """``VectorStore`` on the embedded Qdrant engine; safe to call from several threads."""

    snapshot_format = "edge-shard"

    def __init__(
        self, root: Path, tuning: EdgeTuning | None = None, auto_index: IndexPolicy | None = None
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tuning = tuning or EdgeTuning()
        self._lock = threading.Lock()  # guards _open and collection directories
        self._open: dict[str, OpenShard] = {}
        self.indexer = (
            BackgroundIndexer(auto_index, self._index_counts, self.optimize)
            if auto_index is not None
            else None
        )

    def _opened(self, spec: CollectionSpec, shard: qe.EdgeShard, path: Path) -> OpenShard:
        """Register an open shard (caller holds the lock), searched with its own settings."""
        coll = OpenShard(spec, shard, path, self.tuning.for_index(spec.index).search_params())
        self._open[spec.name] = coll
        return coll

    # --- collections ---------------------------------------------------------------------

    def _claim(self, name: str) -> Path:
        """The directory a new collection ``name`` goes in: ``Conflict`` if a complete one is there,
        and whatever an interrupted create or delete left there is removed. Call under the lock."""
        path = self.root / name
        if (path / SPEC_FILE).exists():
            raise Conflict(f"collection '{name}' already exists")
        if path.exists():
            shutil.rmtree(path)
        return path

    def _create(self, spec: CollectionSpec) -> None:
        with self._lock:
            path = self._claim(spec.name)
            shard = qe.EdgeShard.create(str(path / SHARD_DIR), self.tuning.engine_config(spec))
            try:
                _add_indexes(shard, spec)
                shard.flush()
                write_json(path / SPEC_FILE, spec_to_dict(spec))
            except BaseException:
                shard.close()
                shutil.rmtree(path, ignore_errors=True)
                raise
            self._opened(spec, shard, path)

    def _set_spec(self, spec: CollectionSpec) -> None:
        coll = self._get(spec.name)
        with self._lock:
            if coll.closed or not (coll.path / SPEC_FILE).exists():
                raise NotFound(f"collection '{spec.name}' does not exist")
            write_json(coll.path / SPEC_FILE, spec_to_dict(spec))
            coll.spec = spec
            coll.params = self.tuning.for_index(spec.index).search_params()

    def _delete(self, name: str) -> None:
        with self._lock:
            path = self.root / name
            if not (path / SPEC_FILE).exists():
                raise NotFound(f"collection '{name}' does not exist")
            coll = self._open.pop(name, None)
            (path / SPEC_FILE).unlink()  # from here on the collection does not exist
            if coll is not None:
                coll.close()
            shutil.rmtree(path, ignore_errors=True)
        if self.indexer is not None:
            self.indexer.forget(name)

    def _exists(self, name: str) -> bool:
        return (self.root / name / SPEC_FILE).exists()

    def spec(self, name: str) -> CollectionSpec:
        """The spec the collection was created with (read back from disk after a restart)."""
        return self._get(name).spec

    # --- points --------------------------------------------------------------------------

    def _count(self, name: str, exact: bool) -> int:
        with self._use(name) as coll:
            return coll.shard.count(qe.CountRequest(exact=exact))

    @staticmethod
    def _stored_vector(vector: Sequence[float]) -> Sequence[float]:
        """Packed float32 (``array('f')``): the engine reads it ~2x faster than a list of Python floats,
        and turning vectors into engine points was most of a bulk upload's Python time."""
        if isinstance(vector, np.ndarray):
            return array("f", vector.astype(np.float32, copy=False).tobytes())
        return array("f", vector)

    def _put(self, name: str, points: list[Point]) -> None:
        engine_points = [
            qe.Point(pid, vector if sparse is None else {"": vector, LEXICAL_VECTOR: sparse}, payload)
            for pid, vector, sparse, payload in points
        ]
        with self._use(name, write=True) as coll:
            coll.shard.update(qe.UpdateOperation.upsert_points(engine_points))
            coll.record(engine_points)
        if self.indexer is not None:
            self.indexer.note(name)

    def _retrieve(self, name: str, point_ids: list[str]) -> Iterable[Any]:
        with self._use(name) as coll:
            return coll.shard.retrieve(point_ids, with_payload=False, with_vector=False)

    def _nearest(
        self, name: str, vector: list[float], top_k: int, filter: Filter | None, mode: SearchMode | None
    ) -> Iterable[Any]:
        with self._use(name) as coll:
            params = coll.params
            if mode is not None:
                params = self.tuning.for_index(coll.spec.index).search_params(mode)
            request = qe.QueryRequest(
                limit=top_k,
                query=qe.Query.Nearest(vector),
                filter=to_edge_filter(filter),
                with_payload=True,
                with_vector=False,
                params=params,
            )
            return coll.shard.query(request)

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
        """One planned batch: the final query (BM25, or both stages fused over their prefetched
        candidates) and, for a hybrid search, each stage's own candidates, whose scores go with the hits."""
        edge_filter = to_edge_filter(filter)
        candidates = max(retrieval.candidates, top_k)
        with self._use(name) as coll:
            params = coll.params
            if mode is not None:
                params = self.tuning.for_index(coll.spec.index).search_params(mode)
            stages: dict[str, qe.Prefetch] = {}
            if vector is not None and retrieval.kind != "lexical":
                stages["dense"] = qe.Prefetch(
                    candidates, query=qe.Query.Nearest(vector), params=params, filter=edge_filter
                )
            if sparse is not None:
                stages["lexical"] = qe.Prefetch(
                    candidates, query=qe.Query.Nearest(sparse, using=LEXICAL_VECTOR), filter=edge_filter
                )
            query: Any = next(iter(stages.values())).query
            prefetches: list[qe.Prefetch] | None = None
            if retrieval.kind == "hybrid":
                weights = rrf_weights(retrieval.lexical_weight)
                fusion = retrieval.fusion == "rrf"
                query = qe.Fusion.Rrf(RRF_K, weights) if fusion else qe.Fusion.Dbsf()
                prefetches = list(stages.values())
            requests = [
                qe.QueryRequest(
                    limit=top_k,
                    query=query,
                    prefetches=prefetches,
                    filter=edge_filter,
                    with_payload=True,
                    with_vector=False,
                )
            ]
            if retrieval.kind == "hybrid":
                requests += [
                    qe.QueryRequest(
                        limit=candidates, query=stage.query, filter=edge_filter, params=stage.params
                    )
                    for stage in stages.values()
                ]
            results = coll.shard.query_batch(qe.QueryBatchRequest(requests))
        return with_stages(results[0], dict(zip(stages, results[1:], strict=False)))

    def _dense_vectors(self, name: str, point_ids: list[str]) -> list[list[float]]:
        with self._use(name) as coll:
            points = coll.shard.retrieve(point_ids, with_payload=False, with_vector=True)
        by_id = {str(p.id): dense_of(p.vector) for p in points}
        return [by_id[pid] for pid in point_ids]

    def _sample(self, name: str, limit: int) -> list[list[float]]:
        request = qe.ScrollRequest(limit=limit, with_payload=False, with_vector=True)
        with self._use(name) as coll:
            points, _ = coll.shard.scroll(request)
        return [dense_of(point.vector) for point in points]

    def _page(
        self, name: str, limit: int, offset: str | None, vectors: bool | list[str]
    ) -> tuple[Iterable[Any], Any]:
        request = qe.ScrollRequest(offset=offset, limit=limit, with_payload=True, with_vector=vectors)
        with self._use(name) as coll:
            return coll.shard.scroll(request)

    # --- maintenance ---------------------------------------------------------------------

    def optimize(self, name: str, *, in_process: bool = False) -> bool:
        """Merge segments and build the HNSW graph (the background indexer calls this). True if it changed.

        By default this runs in a child process on a flushed copy of the shard, then swaps the copy
        in: searches and upserts keep running on the live shard, and the upserts are replayed into
        the copy just before the swap. A build that fails or is killed leaves the live shard as it
        was. ``in_process=True`` skips the copy (faster, for scripts) but blocks every Python thread.
        """
        coll = self._get(name)
        if in_process:
            with self._use(name, write=True) as live:
                changed = live.shard.optimize()
                live.shard.flush()
                return changed
        with coll.building:
            work = coll.path / WORK_DIR
            shutil.rmtree(work, ignore_errors=True)  # what a crashed build left
            with self._use(name, write=True) as live:
                live.shard.flush()
                shutil.copytree(live.path / SHARD_DIR, work)
                live.journal = []
            try:
                changed = self._build(coll, name, work)
                if changed:
                    with coll.writing:  # upserts wait from the replay to the swap
                        coll.replay(work)
                        with coll.rw.write():
                            if coll.closed:
                                raise NotFound(f"collection '{name}' does not exist")
                            coll.swap_in(work)
                return changed
            finally:
                with coll.writing:
                    coll.journal = None
                shutil.rmtree(work, ignore_errors=True)
                return_freed_memory()

    def _build(self, coll: OpenShard, name: str, work: Path) -> bool:
        """Optimize the copy at ``work`` in a child process (``close`` kills it); True if it changed."""
        with coll.rw.read():
            if coll.closed:
                raise NotFound(f"collection '{name}' does not exist")
            coll.child = subprocess.Popen(
                [sys.executable, "-c", OPTIMIZE_CHILD, str(work)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        try:
            out, err = coll.child.communicate()
        finally:
            returncode, coll.child = coll.child.returncode, None
        if coll.closed:
            raise NotFound(f"collection '{name}' does not exist")
        if returncode != 0:
            raise Unavailable(
                f"optimizing collection '{name}' failed (exit {returncode}): {err.strip()[-500:]}"
            )
        return out.strip() == "changed"

    # --- snapshots (backups) --------------------------------------------------------------

    def _export(self, name: str, dest: Path) -> int:
        """Copy collection ``name``'s shard to ``dest/shard`` and return its number of points.

        The copy is consistent: the shard is flushed and copied while upserts and ``optimize`` wait
        (searches go on). Holes in the engine's preallocated files stay holes in the copy.
        """
        with self._use(name, write=True) as coll:
            coll.shard.flush()
            count = coll.shard.count(qe.CountRequest(exact=True))
            copy_tree_sparse(coll.path / SHARD_DIR, dest / SHARD_DIR)
        return count

    def _import(self, spec: CollectionSpec, source: Path) -> None:
        """Create collection ``spec.name`` from a shard ``export_snapshot`` wrote to ``source`` (moved in).

        The shard must match the spec's dimensions and distance (``InvalidInput`` otherwise); it gets
        this store's tuning and any payload index of the spec it lacks. ``Conflict`` if the name is taken.
        """
        shard_dir = source / SHARD_DIR
        if not (shard_dir / "edge_config.json").is_file():
            raise InvalidInput("the snapshot holds no qdrant-edge shard (no shard/edge_config.json)")
        with self._lock:
            path = self._claim(spec.name)
            path.mkdir(parents=True)
            try:
                shutil.move(str(shard_dir), str(path / SHARD_DIR))
                try:
                    shard = qe.EdgeShard.load(str(path / SHARD_DIR), self.tuning.engine_config(spec))
                except Exception as exc:  # the engine raises plain Exception
                    raise InvalidInput(f"the snapshot's shard does not load: {str(exc)[:300]}") from None
                try:
                    _add_indexes(shard, spec, have=shard.info().payload_schema)
                    shard.flush()
                    write_json(path / SPEC_FILE, spec_to_dict(spec))
                except BaseException:
                    shard.close()
                    raise
            except BaseException:
                shutil.rmtree(path, ignore_errors=True)
                raise
            self._opened(spec, shard, path)

    def index_status(self, name: str) -> dict[str, Any]:
        """Points, segments, HNSW-indexed vectors and ``state``: ``indexing`` while a build runs or is due."""
        with self._use(name) as coll:
            info = coll.shard.info()
            indexed = _dense_indexed(coll, info.indexed_vectors_count)
            building = coll.child is not None
        points = info.points_count
        due = self.indexer is not None and self.indexer.indexing(name, points, indexed)
        return {
            "points": points,
            "segments": info.segments_count,
            "indexed_vectors": indexed,
            "state": "indexing" if building or due else "ready",
        }

    def _index_counts(self, name: str) -> tuple[int, int]:
        with self._use(name) as coll:
            info = coll.shard.info()
            return info.points_count, _dense_indexed(coll, info.indexed_vectors_count)

    def close(self) -> None:
        """Stop the background indexer, flush and close every open shard; later calls reopen them."""
        if self.indexer is not None:
            self.indexer.close(timeout=0)
        with self._lock:
            for coll in self._open.values():
                coll.close()
            self._open.clear()
        if self.indexer is not None:
            self.indexer.close()

    # --- internals -----------------------------------------------------------------------

    def _get(self, name: str) -> OpenShard:
        check_name(name)
        with self._lock:
            coll = self._open.get(name)
            if coll is None:
                path = self.root / name
                if not (path / SPEC_FILE).exists():
                    raise NotFound(f"collection '{name}' does not exist")
                if not (path / SHARD_DIR).exists() and (path / OLD_DIR).exists():
                    (path / OLD_DIR).rename(path / SHARD_DIR)  # a swap was interrupted
                spec = spec_from_dict(json.loads((path / SPEC_FILE).read_text()))
                coll = self._opened(spec, qe.EdgeShard.load(str(path / SHARD_DIR)), path)
            return coll

    @contextmanager
    def _use(self, name: str, *, write: bool = False) -> Iterator[OpenShard]:
        """The open collection, held against close/swap (and other writers when ``write``)."""
        coll = self._get(name)
        with coll.writing if write else nullcontext(), coll.rw.read():
            if coll.closed:  # deleted or store closed while we waited
                raise NotFound(f"collection '{name}' does not exist")
            yield coll


_HAS_SPARSE = qe.Filter(must=[qe.HasVectorCondition(LEXICAL_VECTOR)])


def _dense_indexed(coll: OpenShard, indexed_vectors: int) -> int:
    """Dense vectors in an HNSW graph: the engine's count takes the sparse vectors as indexed too
    (their inverted index is built as they arrive), so those are taken off (the engine's estimate of
    points with one: O(segments), exact in the segments the engine keeps)."""
    if coll.spec.lexical is None:
        return indexed_vectors
    return max(0, indexed_vectors - coll.shard.count(qe.CountRequest(exact=False, filter=_HAS_SPARSE)))
