"""The query lane: searches embed apart from the bulk path, so an ingest in flight cannot hold them up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from counterpoint.errors import NotFound
from counterpoint.models.embedder import Embeddings, TextEmbedder
from counterpoint.models.pool import EmbedderPool
from counterpoint.schemas import CollectionCreate, Document, IngestRequest, SearchRequest
from counterpoint.services.embed.backends import LocalEmbedder, ServeEmbedder
from counterpoint.services.embed.query_lane import QueryLane
from counterpoint.settings import Settings
from tests.services.in_process import in_process_core
from tests.settings_factory import TINY, unit_settings


class GatedEmbedder(LocalEmbedder):
    """The bulk path, held busy: each call waits for ``gate`` (a replica still encoding an ingest batch)."""

    def __init__(self, embedder: TextEmbedder) -> None:
        super().__init__(TINY, embedder)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def embed(self, texts: list[str], model: str | None = None) -> Embeddings:
        self.entered.set()
        await self.gate.wait()
        return await super().embed(texts, model)


def _docs(start: int, n: int) -> list[Document]:
    return [
        Document(id=f"d{i}", text=f"document number {i} about topic {i % 7}") for i in range(start, start + n)
    ]


def test_search_answers_while_a_big_ingest_waits_on_the_bulk_path(
    tmp_path: Path, tiny_embedder: TextEmbedder
) -> None:
    async def scenario() -> None:
        bulk = GatedEmbedder(tiny_embedder)
        lane = QueryLane(EmbedderPool(TINY, tiny_embedder))
        with in_process_core(unit_settings(tmp_path), bulk) as core:
            core.query_embedder = lane
            await core.create_collection(CollectionCreate(name="papers"))
            bulk.gate.set()
            await core.ingest("papers", IngestRequest(documents=_docs(0, 20)))
            bulk.gate.clear()
            bulk.entered.clear()

            ingest = asyncio.create_task(core.ingest("papers", IngestRequest(documents=_docs(20, 500))))
            await bulk.entered.wait()  # the big ingest holds the bulk path
            found = await core.search("papers", SearchRequest(query="topic 3", top_k=5))
            assert len(found.hits) == 5
            assert {h.id for h in found.hits} <= {f"d{i}" for i in range(20)}  # what was indexed before
            assert not ingest.done()
            assert lane.batches >= 1

            bulk.gate.set()
            done = await ingest
            assert done.count == 520
            after = await core.search("papers", SearchRequest(query="document number 400", top_k=520))
            assert len(after.hits) == 520

    asyncio.run(scenario())


@pytest.mark.parametrize("max_batch", [32, 4])
def test_lane_batches_concurrent_queries_and_answers_each_its_own(
    tiny_embedder: TextEmbedder, max_batch: int
) -> None:
    texts = [f"query {i} " + "word " * i for i in range(10)]
    expected = tiny_embedder.embed(texts).vectors

    async def scenario() -> tuple[list[Embeddings], int]:
        lane = QueryLane(EmbedderPool(TINY, tiny_embedder), max_batch=max_batch)
        results = await asyncio.gather(*(lane.embed([t]) for t in texts))
        return list(results), lane.batches

    results, batches = asyncio.run(scenario())
    for got, want in zip(results, expected, strict=True):
        assert got.vectors.shape == (1, want.shape[0])
        np.testing.assert_allclose(got.vectors[0], want, atol=1e-5)
    assert batches < len(texts)  # concurrent queries shared forward passes
    assert batches >= -(-len(texts) // max_batch)  # never more than max_batch texts in one


def test_lane_refuses_an_unknown_model_for_that_caller_only(tiny_embedder: TextEmbedder) -> None:
    async def scenario() -> list[object]:
        lane = QueryLane(EmbedderPool(TINY, tiny_embedder))
        return await asyncio.gather(lane.embed(["a"], "nope"), lane.embed(["b"]), return_exceptions=True)

    bad, good = asyncio.run(scenario())
    assert isinstance(bad, NotFound) and "nope" in str(bad)
    assert isinstance(good, Embeddings) and good.vectors.shape[0] == 1


def test_lane_passes_an_encode_error_to_its_callers_and_goes_on(tiny_embedder: TextEmbedder) -> None:
    class Flaky(TextEmbedder):
        fail = True

        def __init__(self) -> None:
            self.__dict__.update(tiny_embedder.__dict__)

        def embed(self, texts: list[str]) -> Embeddings:
            if Flaky.fail:
                Flaky.fail = False
                raise RuntimeError("encoder broke")
            return tiny_embedder.embed(texts)

    async def scenario() -> tuple[object, Embeddings]:
        lane = QueryLane(EmbedderPool(TINY, Flaky()))
        first = await asyncio.gather(lane.embed(["a"]), return_exceptions=True)
        return first[0], await lane.embed(["b"])

    error, second = asyncio.run(scenario())
    assert isinstance(error, RuntimeError)
    assert second.vectors.shape[0] == 1


def test_lane_gives_way_to_the_replica_only_while_it_has_work(tiny_embedder: TextEmbedder) -> None:
    replica_busy = [False]

    async def scenario() -> list[int]:
        lane = QueryLane(
            EmbedderPool(TINY, tiny_embedder),
            busy=lambda: replica_busy[0],
            busy_threads=1,
            idle_threads=2,
        )
        several = [f"query {i}" for i in range(QueryLane.MIN_TEXTS_FOR_ALL_CORES)]
        await lane.embed(several)
        replica_busy[0] = True
        await lane.embed(several)
        replica_busy[0] = False
        await lane.embed(several)
        await lane.embed(["a lone query"])
        return list(lane.threads_used)

    before = torch.get_num_threads()
    try:
        assert asyncio.run(scenario()) == [2, 1, 2, 1]
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("backend", ["onnx", "openvino-int8"])
def test_lane_threads_reach_an_exported_graph(backend: str, tiny_model_path: Path, tmp_path: Path) -> None:
    """An exported runtime fixes its threads when the graph loads: the lane still switches them, one
    loaded copy per count, and both copies embed alike."""
    embedder = TextEmbedder(
        str(tiny_model_path), max_seq_length=64, backend=backend, export_dir=tmp_path / backend
    )  # type: ignore[arg-type]
    replica_busy = [False]
    several = [f"query {i}" for i in range(QueryLane.MIN_TEXTS_FOR_ALL_CORES)]

    async def scenario() -> tuple[list[int], Embeddings, Embeddings]:
        lane = QueryLane(
            EmbedderPool(TINY, embedder), busy=lambda: replica_busy[0], busy_threads=1, idle_threads=2
        )
        idle = await lane.embed(several)
        replica_busy[0] = True
        busy = await lane.embed(several)
        return list(lane.threads_used), idle, busy

    before = torch.get_num_threads()
    used, idle, busy = asyncio.run(scenario())
    assert used == [2, 1]
    assert embedder.graph is not None and set(embedder.graph._loaded) >= {1, 2}
    assert torch.get_num_threads() == before  # torch's own pool is not the one switched
    np.testing.assert_allclose(idle.vectors, busy.vectors, atol=1e-5)


def test_serve_embedder_counts_the_calls_in_flight() -> None:
    class Handle:
        def __init__(self) -> None:
            self.release = asyncio.Event()

        def __getattr__(self, method: str) -> object:
            outer = self

            class Method:
                def remote(self, *args: object) -> object:
                    async def answer() -> str:
                        await outer.release.wait()
                        return method

                    return answer()

            return Method()

    async def scenario() -> list[int]:
        handle = Handle()
        bulk = ServeEmbedder(handle, timeout_s=5)  # type: ignore[arg-type]
        seen = [bulk.in_flight]
        calls = [asyncio.create_task(bulk.embed(["a"])) for _ in range(3)]
        await asyncio.sleep(0)
        seen.append(bulk.in_flight)
        handle.release.set()
        await asyncio.gather(*calls)
        return [*seen, bulk.in_flight]

    assert asyncio.run(scenario()) == [0, 3, 0]


def test_query_lane_settings_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().query_lane is True
    monkeypatch.setenv("COUNTERPOINT_QUERY_LANE", "false")
    monkeypatch.setenv("COUNTERPOINT_QUERY_LANE_MAX_BATCH", "8")
    settings = Settings()
    assert settings.query_lane is False and settings.query_lane_max_batch == 8
    with pytest.raises(ValidationError, match="query_lane_max_batch"):
        Settings(query_lane_max_batch=0)


def test_embeddings_split_hands_each_caller_its_rows() -> None:
    whole = Embeddings(np.arange(12, dtype=np.float32).reshape(6, 2), [1, 2, 3, 4, 5, 6])
    parts = whole.split([2, 0, 4])
    assert [p.token_counts for p in parts] == [[1, 2], [], [3, 4, 5, 6]]
    assert [p.vectors.shape for p in parts] == [(2, 2), (0, 2), (4, 2)]
    assert np.array_equal(np.concatenate([p.vectors for p in parts]), whole.vectors)
