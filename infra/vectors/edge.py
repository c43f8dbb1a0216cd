"""Embedded Qdrant (``qdrant-edge``) vector store: one engine shard per collection on local disk.

Layout under ``root``::

    root/<name>/spec.json   our CollectionSpec; its presence marks a complete collection
    root/<name>/shard/      the engine's files (segments, WAL, edge_config.json)

Points are searchable as soon as ``upsert`` returns: new points land in an appendable segment
that is searched exactly (brute force, or through a payload index when a filter is selective).
The engine has no background optimizer, so the HNSW graph is only built by ``optimize(name)``,
which the caller runs after a bulk ingest. ``EdgeShard.optimize`` holds the GIL for its whole
run (minutes for 100k vectors), so by default it runs in a child process on a copy of the
shard and the copy is swapped in; the collection stays searchable meanwhile, upserts wait.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from counterpoint.errors import Conflict, InvalidInput, NotFound, Unavailable
from counterpoint.infra.sparse import copy_tree_sparse
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
from counterpoint.infra.vectors.filters import to_edge_filter
from counterpoint.schemas import Filter

SPEC_FILE = "spec.json"
SHARD_DIR = "shard"
_WORK_DIR = "shard.optimizing"
_OLD_DIR = "shard.old"
_RETRIEVE_CHUNK = 1024

_DISTANCE = {"cosine": qe.Distance.Cosine, "dot": qe.Distance.Dot, "euclid": qe.Distance.Euclid}
_SCHEMA = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
}

# Run by ``optimize`` in a child process: the engine keeps the GIL while it optimizes.
_OPTIMIZE_CHILD = """\
import sys
import qdrant_edge as qe
shard = qe.EdgeShard.load(sys.argv[1])
changed = shard.optimize()
shard.flush()
shard.close()
print("changed" if changed else "unchanged")
"""


@dataclass(frozen=True)
class EdgeTuning:
    """Index and search knobs of the embedded engine (sizes in KB, as the engine takes them).

    ``full_scan_threshold_kb``: a filtered search whose matching points take less than this
    much vector storage in a segment is answered exactly through the payload index instead
    of the graph (10 MB = ~6.6k 384-d float vectors). ``indexing_threshold_kb``: segments
    smaller than this get no HNSW graph (None: engine default). ``indexing_threads`` 0 means
    all CPUs. ``hnsw_ef`` None means the engine default (``ef_construct``). ``quantization``
    keeps an int8 copy of the vectors in RAM, scores with it and rescores the best
    ``oversampling`` x top_k candidates with the full vectors: exact scans get ~2x faster,
    but filtered graph searches lost recall in bench/bench_vector_search.py, so it is off.
    """

    m: int = 16
    ef_construct: int = 100
    full_scan_threshold_kb: int = 10_000
    indexing_threshold_kb: int | None = None
    indexing_threads: int = 0
    hnsw_ef: int | None = None
    quantization: bool = False
    oversampling: float = 2.0


class _RWLock:
    """Many readers or one writer, writers first: shard calls read, close/swap writes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _Collection:
    """An open shard with its spec and the locks that guard it."""

    def __init__(self, spec: CollectionSpec, shard: qe.EdgeShard, path: Path) -> None:
        self.spec = spec
        self.shard = shard
        self.path = path
        self.rw = _RWLock()  # read: any shard call; write: closing or swapping the shard
        self.writing = threading.Lock()  # upserts and optimize, one at a time
        self.closed = False

    def close(self) -> None:
        with self.rw.write():
            if not self.closed:
                self.closed = True
                self.shard.flush()
                self.shard.close()


class EdgeVectorStore:
    """``VectorStore`` on the embedded Qdrant engine; safe to call from several threads."""

    def __init__(self, root: Path, tuning: EdgeTuning | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tuning = tuning or EdgeTuning()
        self._lock = threading.Lock()  # guards _open and collection directories
        self._open: dict[str, _Collection] = {}
        t = self.tuning
        quant = (
            qe.QuantizationSearchParams(rescore=True, oversampling=t.oversampling) if t.quantization else None
        )
        self._params = qe.SearchParams(hnsw_ef=t.hnsw_ef, quantization=quant)

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

    def create_collection(self, spec: CollectionSpec) -> None:
        check_spec(spec)
        with self._lock:
            path = self._claim(spec.name)
            shard = qe.EdgeShard.create(str(path / SHARD_DIR), self._config(spec))
            try:
                for key, kind in {**spec.payload_indexes, ID_KEY: "keyword"}.items():
                    shard.update(qe.UpdateOperation.create_field_index(key, _SCHEMA[kind]))
                shard.flush()
                _write_json(path / SPEC_FILE, spec_to_dict(spec))
            except BaseException:
                shard.close()
                shutil.rmtree(path, ignore_errors=True)
                raise
            self._open[spec.name] = _Collection(spec, shard, path)

    def delete_collection(self, name: str) -> None:
        check_name(name)
        with self._lock:
            path = self.root / name
            if not (path / SPEC_FILE).exists():
                raise NotFound(f"collection '{name}' does not exist")
            coll = self._open.pop(name, None)
            (path / SPEC_FILE).unlink()  # from here on the collection does not exist
            if coll is not None:
                coll.close()
            shutil.rmtree(path, ignore_errors=True)

    def collection_exists(self, name: str) -> bool:
        return valid_name(name) and (self.root / name / SPEC_FILE).exists()

    def spec(self, name: str) -> CollectionSpec:
        """The spec the collection was created with (read back from disk after a restart)."""
        return self._get(name).spec

    # --- points --------------------------------------------------------------------------

    def count(self, name: str) -> int:
        with self._use(name) as coll:
            return coll.shard.count(qe.CountRequest(exact=True))

    def upsert(self, name: str, records: Sequence[VectorRecord]) -> None:
        with self._use(name, write=True) as coll:
            check_dimensions(name, coll.spec.dimensions, [r.vector for r in records])
            if not records:
                return
            points = [qe.Point(point_id(r.id), as_floats(r.vector), record_payload(r)) for r in records]
            coll.shard.update(qe.UpdateOperation.upsert_points(points))

    def existing_ids(self, name: str, ids: Sequence[str]) -> set[str]:
        wanted = {point_id(i): i for i in ids}
        found: set[str] = set()
        keys = list(wanted)
        with self._use(name) as coll:
            for start in range(0, len(keys), _RETRIEVE_CHUNK):
                chunk = keys[start : start + _RETRIEVE_CHUNK]
                records = coll.shard.retrieve(chunk, with_payload=False, with_vector=False)
                found.update(wanted[str(rec.id)] for rec in records)
        return found

    def search(
        self, name: str, vector: Sequence[float], top_k: int, filter: Filter | None = None
    ) -> list[ScoredRecord]:
        if top_k < 1:
            raise InvalidInput(f"top_k must be at least 1, got {top_k}")
        with self._use(name) as coll:
            check_dimensions(name, coll.spec.dimensions, [vector])
            request = qe.QueryRequest(
                limit=top_k,
                query=qe.Query.Nearest(as_floats(vector)),
                filter=to_edge_filter(filter),
                with_payload=True,
                with_vector=False,
                params=self._params,
            )
            points = coll.shard.query(request)
        # The engine returns best first for every distance (euclid: smallest distance first).
        return [_scored(p.id, p.score, p.payload) for p in points]

    def scroll(
        self, name: str, limit: int = 256, offset: str | None = None
    ) -> tuple[list[ScoredRecord], str | None]:
        if limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        with self._use(name) as coll:
            records, after = coll.shard.scroll(
                qe.ScrollRequest(offset=offset, limit=limit, with_payload=True, with_vector=False)
            )
        return [_scored(r.id, 0.0, r.payload) for r in records], None if after is None else str(after)

    # --- maintenance ---------------------------------------------------------------------

    def optimize(self, name: str, *, in_process: bool = False) -> bool:
        """Merge segments and build the HNSW graph; call after a bulk ingest. True if it changed.

        By default this runs in a child process on a flushed copy of the shard, then swaps the
        copy in: searches keep running on the live shard, upserts wait. ``in_process=True``
        skips the copy (faster, for scripts) but blocks every Python thread until it is done.
        """
        coll = self._get(name)
        with coll.writing:
            if in_process:
                with self._use(name) as live:
                    changed = live.shard.optimize()
                    live.shard.flush()
                    return changed
            work = coll.path / _WORK_DIR
            shutil.rmtree(work, ignore_errors=True)
            with self._use(name) as live:
                live.shard.flush()
                shutil.copytree(live.path / SHARD_DIR, work)
            try:
                result = subprocess.run(
                    [sys.executable, "-c", _OPTIMIZE_CHILD, str(work)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
            except subprocess.CalledProcessError as exc:
                shutil.rmtree(work, ignore_errors=True)
                if coll.closed:
                    raise NotFound(f"collection '{name}' does not exist") from exc
                raise Unavailable(
                    f"optimizing collection '{name}' failed: {exc.stderr.strip()[-500:]}"
                ) from exc
            if result.stdout.strip() != "changed":
                shutil.rmtree(work, ignore_errors=True)
                return False
            with coll.rw.write():
                if coll.closed:
                    shutil.rmtree(work, ignore_errors=True)
                    raise NotFound(f"collection '{name}' does not exist")
                _swap_in(coll, work)
            return True

    # --- snapshots (backups) --------------------------------------------------------------

    snapshot_format = "edge-shard"

    def export_snapshot(self, name: str, dest: Path) -> int:
        """Copy collection ``name``'s shard to ``dest/shard`` and return its number of points.

        The copy is consistent: the shard is flushed and copied while upserts and ``optimize`` wait
        (searches go on). Holes in the engine's preallocated files stay holes in the copy.
        """
        with self._use(name, write=True) as coll:
            coll.shard.flush()
            count = coll.shard.count(qe.CountRequest(exact=True))
            copy_tree_sparse(coll.path / SHARD_DIR, Path(dest) / SHARD_DIR)
        return count

    def import_snapshot(self, spec: CollectionSpec, source: Path) -> None:
        """Create collection ``spec.name`` from a shard ``export_snapshot`` wrote to ``source`` (moved in).

        The shard must match the spec's dimensions and distance (``InvalidInput`` otherwise); it gets
        this store's tuning and any payload index of the spec it lacks. ``Conflict`` if the name is taken.
        """
        check_spec(spec)
        shard_dir = Path(source) / SHARD_DIR
        if not (shard_dir / "edge_config.json").is_file():
            raise InvalidInput("the snapshot holds no qdrant-edge shard (no shard/edge_config.json)")
        with self._lock:
            path = self._claim(spec.name)
            path.mkdir(parents=True)
            try:
                shutil.move(str(shard_dir), str(path / SHARD_DIR))
                try:
                    shard = qe.EdgeShard.load(str(path / SHARD_DIR), self._config(spec))
                except Exception as exc:  # the engine raises plain Exception
                    raise InvalidInput(f"the snapshot's shard does not load: {str(exc)[:300]}") from None
                try:
                    have = set(shard.info().payload_schema)
                    for key, kind in {**spec.payload_indexes, ID_KEY: "keyword"}.items():
                        if key not in have:
                            shard.update(qe.UpdateOperation.create_field_index(key, _SCHEMA[kind]))
                    shard.flush()
                    _write_json(path / SPEC_FILE, spec_to_dict(spec))
                except BaseException:
                    shard.close()
                    raise
            except BaseException:
                shutil.rmtree(path, ignore_errors=True)
                raise
            self._open[spec.name] = _Collection(spec, shard, path)

    def index_status(self, name: str) -> dict[str, int]:
        """Points, segments and HNSW-indexed vectors: shows whether ``optimize`` built a graph."""
        with self._use(name) as coll:
            info = coll.shard.info()
            return {
                "points": info.points_count,
                "segments": info.segments_count,
                "indexed_vectors": info.indexed_vectors_count,
            }

    def close(self) -> None:
        """Flush and close every open shard; later calls reopen them from disk."""
        with self._lock:
            for coll in self._open.values():
                coll.close()
            self._open.clear()

    # --- internals -----------------------------------------------------------------------

    def _config(self, spec: CollectionSpec) -> qe.EdgeConfig:
        t = self.tuning
        quantization = (
            qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned)
            if t.quantization
            else None
        )
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=spec.dimensions, distance=_DISTANCE[spec.distance]),
            hnsw_config=qe.HnswIndexConfig(
                m=t.m,
                ef_construct=t.ef_construct,
                full_scan_threshold=t.full_scan_threshold_kb,
                # The engine's own "auto" (0) builds with one thread.
                max_indexing_threads=t.indexing_threads or os.cpu_count() or 1,
            ),
            # The engine keeps one appendable segment and optimizes it into one indexed segment
            # (default_segment_number does not split it in 0.9), so there is no segment knob here.
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=t.indexing_threshold_kb),
            quantization_config=quantization,
        )

    def _get(self, name: str) -> _Collection:
        check_name(name)
        with self._lock:
            coll = self._open.get(name)
            if coll is None:
                path = self.root / name
                if not (path / SPEC_FILE).exists():
                    raise NotFound(f"collection '{name}' does not exist")
                if not (path / SHARD_DIR).exists() and (path / _OLD_DIR).exists():
                    (path / _OLD_DIR).rename(path / SHARD_DIR)  # a swap was interrupted
                spec = spec_from_dict(json.loads((path / SPEC_FILE).read_text()))
                coll = _Collection(spec, qe.EdgeShard.load(str(path / SHARD_DIR)), path)
                self._open[name] = coll
            return coll

    @contextmanager
    def _use(self, name: str, *, write: bool = False) -> Iterator[_Collection]:
        """The open collection, held against close/swap (and other writers when ``write``)."""
        coll = self._get(name)
        with coll.writing if write else nullcontext(), coll.rw.read():
            if coll.closed:  # deleted or store closed while we waited
                raise NotFound(f"collection '{name}' does not exist")
            yield coll


def shard_records(shard_dir: Path, page: int = 256) -> Iterator[list[VectorRecord]]:
    """The points of a shard directory (a backup's) as records with their vectors, a page at a time.

    How a backup of the embedded engine is loaded into another backend (a Qdrant server).
    """
    shard = qe.EdgeShard.load(str(shard_dir))
    try:
        offset = None
        while True:
            points, offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=page, with_payload=True, with_vector=True)
            )
            records = []
            for point in points:
                payload = dict(point.payload or {})
                doc_id = str(payload.pop(ID_KEY, point.id))
                records.append(VectorRecord(doc_id, list(point.vector), payload))
            if records:
                yield records
            if offset is None:
                return
    finally:
        shard.close()


def _swap_in(coll: _Collection, work: Path) -> None:
    """Replace the live shard directory by the optimized copy (caller holds ``coll.rw.write``)."""
    live, old = coll.path / SHARD_DIR, coll.path / _OLD_DIR
    shutil.rmtree(old, ignore_errors=True)
    coll.shard.close()
    live.rename(old)
    work.rename(live)
    try:
        coll.shard = qe.EdgeShard.load(str(live))
    except BaseException:
        live.rename(work)
        old.rename(live)
        coll.shard = qe.EdgeShard.load(str(live))
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _scored(pid: Any, score: float, payload: dict[str, Any] | None) -> ScoredRecord:
    payload = dict(payload or {})
    return ScoredRecord(id=str(payload.get(ID_KEY, pid)), score=float(score), payload=payload)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)
