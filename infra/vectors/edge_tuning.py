"""The embedded engine's knobs (:class:`EdgeTuning`) and the engine config built from them.

Also the mapping of Counterpoint's distance and payload-type names onto ``qdrant_edge``'s.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace

import qdrant_edge as qe

from counterpoint.infra.vectors.base import CollectionSpec, IndexSettings, SearchMode
from counterpoint.infra.vectors.lexical import LEXICAL_VECTOR
from counterpoint.schemas import VectorDatatype

DISTANCE = {"cosine": qe.Distance.Cosine, "dot": qe.Distance.Dot, "euclid": qe.Distance.Euclid}
DATATYPE = {"float32": qe.VectorStorageDatatype.Float32, "float16": qe.VectorStorageDatatype.Float16}
SCHEMA = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
}

# What a search reads for each hit it returns: the point's payload (text, title, metadata) and its
# external id. Left memory-mapped and read on first touch (the engine's default), the first searches
# after a graph build or a restart fault them in from disk a page per hit: at 200k vectors the first
# 300 searches after a build took ~2,450 major page faults and p50 1.8-2.6 ms against 0.5-0.8 ms
# warm; with the payload cached (read into the page cache when the shard loads, reclaimable) and the
# id map pinned in RAM, ~220 faults and 1.0-1.4 ms (README "Search at scale"). The engine fixes a
# segment's placement when it builds it: collections created before keep theirs until re-indexed.
PAYLOAD_MEMORY = qe.Memory.Cached
ID_TRACKER_MEMORY = qe.Memory.Pinned


@dataclass(frozen=True)
class EdgeTuning:
    """Index and search knobs of the embedded engine (sizes in KB, as the engine takes them).

    ``full_scan_threshold_kb``: a filtered search whose matching points take less than this
    much vector storage in a segment is answered exactly through the payload index instead
    of the graph (10 MB = ~6.6k 384-d float vectors). ``indexing_threshold_kb``: segments
    smaller than this get no HNSW graph (None: engine default). ``indexing_threads`` 0 means
    all CPUs. ``hnsw_ef``: candidates a graph search explores. ``quantization`` keeps an int8 copy
    of the vectors in RAM, scores with it and rescores the best ``oversampling`` x top_k candidates
    with the full vectors. ``on_disk`` leaves the full vectors memory-mapped on disk (cold); unset,
    it follows ``quantization``: with the int8 copy in RAM the full vectors are only read to rescore
    a few candidates per search, so they stay on disk (Qdrant's own low-memory setup: 1.24 GB
    resident after a 1M x 384 build instead of 2.56; search p50 up to ~35 % more on some query
    sets at 300k, all under 2.6 ms: README "Search at scale"). ``datatype`` ``"float16"`` stores
    the full vectors at half the size, and then (``on_disk`` unset) in RAM: rescoring never waits
    on a disk read, for ~half the memory float32 in RAM takes.

    The defaults come from ``bench/bench_scale.py`` (README "Search at scale"): int8 quantization
    builds the graph ~10x faster (the engine builds with the int8 copy) and searches ~3x faster at
    the same recall after rescoring, which pays for ``ef_construct`` 128; a search ef of 128 gives
    recall@10 0.99-1.00 on 1M clustered 384-d vectors at p50 1.2-2.3 ms (filtered too) on 2 cores,
    where 256 passed 5 ms on filtered searches for no recall gained.
    A collection's own :class:`IndexSettings` override these store-wide defaults (:meth:`for_index`).
    """

    m: int = 16
    ef_construct: int = 128
    full_scan_threshold_kb: int = 10_000
    indexing_threshold_kb: int | None = None
    indexing_threads: int = 0
    hnsw_ef: int | None = 128
    quantization: bool = True
    oversampling: float = 2.0
    on_disk: bool | None = None
    datatype: VectorDatatype = "float32"

    def for_index(self, index: IndexSettings) -> EdgeTuning:
        """These knobs with a collection's own settings (those it sets) in place of the defaults."""
        return replace(self, **{k: v for k, v in asdict(index).items() if v is not None})

    def search_params(self, mode: SearchMode | None = None) -> qe.SearchParams:
        """The parameters a search runs with; ``mode`` makes it exact or overrides ``hnsw_ef``.
        An exact search ignores the int8 copy too: it is the ground truth recall is measured against."""
        mode = mode or SearchMode()
        quant = None
        if self.quantization:
            quant = (
                qe.QuantizationSearchParams(ignore=True)
                if mode.exact
                else qe.QuantizationSearchParams(rescore=True, oversampling=self.oversampling)
            )
        return qe.SearchParams(hnsw_ef=mode.hnsw_ef or self.hnsw_ef, exact=mode.exact, quantization=quant)

    @property
    def vectors_on_disk(self) -> bool:
        """Whether the full vectors stay on disk: ``on_disk``, or unset, whenever there is an int8 copy
        to search with and they are float32 (float16 ones are small enough to keep in RAM)."""
        if self.on_disk is None:
            return self.quantization and self.datatype == "float32"
        return self.on_disk

    def engine_config(self, spec: CollectionSpec) -> qe.EdgeConfig:
        """The engine config of a shard holding ``spec``'s vectors, with these knobs and its own settings."""
        return self.for_index(spec.index)._engine_config(spec)

    def _engine_config(self, spec: CollectionSpec) -> qe.EdgeConfig:
        quantization = (
            qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned)
            if self.quantization
            else None
        )
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(
                size=spec.dimensions,
                distance=DISTANCE[spec.distance],
                memory=qe.Memory.Cold if self.vectors_on_disk else None,
                datatype=DATATYPE[self.datatype],
            ),
            hnsw_config=qe.HnswIndexConfig(
                m=self.m,
                ef_construct=self.ef_construct,
                full_scan_threshold=self.full_scan_threshold_kb,
                # The engine's own "auto" (0) builds with one thread.
                max_indexing_threads=self.indexing_threads or os.cpu_count() or 1,
            ),
            # The engine keeps one appendable segment and optimizes it into one indexed segment
            # (default_segment_number does not split it in 0.9), so there is no segment knob here.
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=self.indexing_threshold_kb),
            quantization_config=quantization,
            payload_memory=PAYLOAD_MEMORY,
            id_tracker_memory=ID_TRACKER_MEMORY,
            sparse_vectors=(
                None
                if spec.lexical is None
                else {LEXICAL_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}
            ),
        )
