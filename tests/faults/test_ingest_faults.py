"""`counterpoint ingest` SIGKILLed midway, then run again.

The real CLI runs in a subprocess against a real HTTP gateway (uvicorn in a thread, the tiny
model); each batch's embedding is slowed down so the kill lands after a few batches. Each batch
is one all-or-nothing request, so the collection then holds whole batches only, the first ones
of the file; running the same command again completes it with the exact count (ids make the
documents already there overwrite themselves, not duplicate).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from counterpoint.infra.db.registry import Registry
from counterpoint.infra.vectors.edge import EdgeVectorStore
from counterpoint.models.embedder import Embeddings, TextEmbedder
from counterpoint.services.embed.backends import LocalEmbedder
from counterpoint.services.gateway.app import create_app
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.settings import Settings
from tests.faults.conftest import free_port, wait_for

pytestmark = pytest.mark.faults

N_DOCS, BATCH = 200, 20


class SlowEmbedder(LocalEmbedder):
    """The tiny in-process embedder, ``delay_s`` slower per call: batches take long enough to kill."""

    delay_s = 0.25

    async def embed(self, texts: list[str], model: str | None = None) -> Embeddings:
        await asyncio.sleep(self.delay_s)
        return await super().embed(texts, model)


class Gateway:
    """The gateway app served over real HTTP by uvicorn in a thread; counts ingests in progress."""

    def __init__(self, core: GatewayCore) -> None:
        self.core = core
        self.in_progress = 0
        ingest = core.ingest

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.in_progress += 1
            try:
                return await ingest(*args, **kwargs)
            finally:
                self.in_progress -= 1

        core.ingest = counted  # type: ignore[method-assign]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(core), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Gateway:
        self.thread.start()
        wait_for(lambda: self.server.started, "uvicorn to start", timeout=60)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture()
def gateway(tmp_path: Path, tiny_model: Path) -> Iterator[Gateway]:
    settings = Settings(
        data_dir=tmp_path / "data", embed_model="tiny", start_mlflow=False, ingest_embed_batch=BATCH
    )
    registry = Registry.from_url(settings.db_url)
    store = EdgeVectorStore(settings.vectors_dir)
    core = GatewayCore(settings, registry, store, SlowEmbedder("tiny", TextEmbedder(str(tiny_model))))
    with Gateway(core) as gw:
        yield gw
    store.close()
    registry.close()


def ingest_command(gateway: Gateway, docs: Path, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    command = [
        sys.executable,
        "-m",
        "counterpoint",
        "ingest",
        "papers",
        str(docs),
        "--batch-size",
        str(BATCH),
    ]
    env = {**os.environ, "COUNTERPOINT_API_URL": gateway.url, "COUNTERPOINT_DATA_DIR": str(tmp_path / "cli")}
    return command, env


def test_a_killed_ingest_leaves_whole_batches_and_a_rerun_completes_it(
    gateway: Gateway, tmp_path: Path
) -> None:
    ids = [f"doc-{i:03d}" for i in range(N_DOCS)]
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps({"id": i, "text": f"passage {i} about lighthouses"}) for i in ids))
    assert httpx.post(f"{gateway.url}/v1/collections", json={"name": "papers"}).status_code == 201
    physical = gateway.core.registry.get_collection("papers").physical_name

    def count() -> int:
        return gateway.core.store.count(physical)

    command, env = ingest_command(gateway, docs, tmp_path)
    log = tmp_path / "ingest.log"
    with log.open("w") as out:
        cli = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: count() >= 2 * BATCH or cli.poll() is not None, "two batches indexed")
            assert cli.poll() is None, f"the ingest ended before it was killed:\n{log.read_text()}"
            cli.send_signal(signal.SIGKILL)
        finally:
            if cli.poll() is None:
                cli.kill()
            cli.wait(timeout=30)
    assert cli.returncode == -signal.SIGKILL
    wait_for(lambda: gateway.in_progress == 0, "the request in flight to finish or fail")

    # whole batches only: the first k batches of the file, nothing of the next one
    indexed = count()
    assert indexed % BATCH == 0 and 2 * BATCH <= indexed < N_DOCS, indexed
    assert gateway.core.store.existing_ids(physical, ids) == set(ids[:indexed])

    # the same command again completes it: exactly N_DOCS documents, none twice
    gateway.core.embedder.delay_s = 0.0  # type: ignore[attr-defined]
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"indexed {N_DOCS}, skipped 0 of {N_DOCS}; 'papers' now holds {N_DOCS} documents" in rerun.stdout
    assert count() == N_DOCS
    assert gateway.core.store.existing_ids(physical, ids) == set(ids)
