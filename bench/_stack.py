"""Shared by the benchmarks: use a running gateway (``--url``) or start a private local stack."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

PRIVATE_PORT = 18100
_KEYS: dict[str, str] = {}  # url of a private stack -> its admin key
DECODE_CACHE = Path(__file__).resolve().parents[1] / ".counterpoint" / "models" / "smollm2-135m-instruct"
EXPORT_CACHE = Path(__file__).resolve().parents[1] / ".counterpoint" / "models" / "exported"
"""Exports of the packaged model (``embed_backend=auto``), shared by private stacks and in-process references."""


@contextlib.contextmanager
def gateway(url: str | None, *, decode: bool = False, env: dict[str, str] | None = None) -> Iterator[str]:
    """Yield a gateway URL; without ``url``, run `counterpoint up` (no demo/UI/MLflow) meanwhile,
    with ``env`` added to its environment (e.g. ``COUNTERPOINT_RERANK_MODEL``).

    The private stack loads the causal LM only with ``decode`` (its converted copy is kept in
    ``COUNTERPOINT_DECODE_CACHE_DIR``, default the repository's ``.counterpoint/models``).
    """
    if url:
        yield url
        return
    data_dir = tempfile.mkdtemp(prefix="cp-bench-")
    key = f"cp_bench_{secrets.token_urlsafe(24)}"
    env = {**os.environ, **(env or {}), "COUNTERPOINT_DATA_DIR": data_dir, "COUNTERPOINT_ADMIN_KEY": key, "COUNTERPOINT_GATEWAY_PORT": str(PRIVATE_PORT),
           "COUNTERPOINT_RAY_DASHBOARD_PORT": "18365", "HF_HUB_OFFLINE": "1",
           "COUNTERPOINT_DECODE_ENABLED": "true" if decode else "false"}  # fmt: skip
    if decode:
        env.setdefault("COUNTERPOINT_DECODE_CACHE_DIR", str(DECODE_CACHE))
    env.setdefault("COUNTERPOINT_EXPORT_CACHE_DIR", str(EXPORT_CACHE))
    proc = subprocess.Popen(
        [sys.executable, "-m", "counterpoint", "up", "--no-demo", "--no-ui", "--no-mlflow"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{PRIVATE_PORT}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if httpx.get(f"{url}/healthz", timeout=2).json()["status"] == "ok":
                    break
            time.sleep(1)
        else:
            raise SystemExit("the private stack did not start; see its logs in " + data_dir)
        _KEYS[url] = key
        yield url
    finally:
        subprocess.run([sys.executable, "-m", "counterpoint", "down"], env=env, timeout=120)
        proc.wait(timeout=60)


def api_key(url: str) -> str | None:
    """The key to call ``url`` with: a private stack's admin key, else the settings' (COUNTERPOINT_API_KEY)."""
    from counterpoint.settings import get_settings

    return _KEYS.get(url) or get_settings().client_api_key


def auth_headers(url: str) -> dict[str, str]:
    key = api_key(url)
    return {"Authorization": f"Bearer {key}"} if key else {}


def served_backend(url: str) -> str:
    """The backend the gateway's default embedding model runs on (its card in ``/v1/models``)."""
    cards = httpx.get(f"{url}/v1/models", headers=auth_headers(url), timeout=30).json()["data"]
    return next(card.get("backend", "torch") for card in cards if card.get("kind") == "embedding")


def in_process_embedder(backend: str, max_seq_length: int, batch_size: int = 64) -> Any:
    """The packaged model as a replica runs it with ``backend`` (a `TextEmbedder`), in this process:
    the reference that leaves out only the serving path."""
    from counterpoint.models.embedder import TextEmbedder
    from counterpoint.models.paths import packaged_minilm_path
    from counterpoint.services.model_loading import local_export_dir
    from counterpoint.settings import Settings

    path = str(packaged_minilm_path())
    settings = Settings(export_cache_dir=EXPORT_CACHE)
    export_dir = None if backend == "torch" else local_export_dir(settings, path, backend)  # type: ignore[arg-type]
    return TextEmbedder(
        path, max_seq_length=max_seq_length, batch_size=batch_size, backend=backend, export_dir=export_dir,
        torch_threads=os.cpu_count(),
    )  # fmt: skip


def served_runtime_rate(backend: str, texts: list[str], max_seq_length: int) -> float:
    """Texts/s of `in_process_embedder` embedding ``texts`` in one call (warmed first)."""
    embedder = in_process_embedder(backend, max_seq_length)
    embedder.embed(texts[:8])
    started = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - started)
