"""How the gateway reaches the embedding models: in-process, or through a Serve handle.

Both satisfy `EmbedderBackend`, so the gateway logic is the same in unit tests (a tiny
in-process model) and in the running stack (the Serve deployment, batched across requests).
Both hold an `EmbedderPool`: the default model plus registered models (``models:/NAME/VERSION``)
loaded on first use, through :func:`registry_loader`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from counterpoint.errors import Unavailable
from counterpoint.models.embedder import Embeddings, TextEmbedder
from counterpoint.models.pool import EmbedderPool, Loader
from counterpoint.schemas import ModelCard
from counterpoint.services import model_loading
from counterpoint.services.outages import as_unavailable
from counterpoint.settings import Settings

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle


@runtime_checkable
class EmbedderBackend(Protocol):
    async def embed(self, texts: list[str], model: str | None = None) -> Embeddings: ...

    async def models(self) -> list[ModelCard]: ...

    async def load(self, model: str) -> ModelCard:
        """Make ``model`` (a served name or a concrete registry reference) ready; its card."""
        ...


build_embedder: model_loading.Build[TextEmbedder] = model_loading.builder(
    TextEmbedder, lambda s: {"max_seq_length": s.max_seq_length, "batch_size": s.embed_max_batch_size}
)
"""A bi-encoder with the settings' sequence length and batch size, run by a backend."""


def registry_loader(settings: Settings) -> Loader:
    """Loads any servable name on first use: ``models:/NAME/VERSION`` (or ``runs:/...``) from MLflow,
    and the default model with another ``?backend=``."""
    return model_loading.registry_loader(
        settings, build_embedder, default=settings.embed_model, default_path=settings.embed_model_path
    )


def default_embedder(config: Settings) -> tuple[str, TextEmbedder]:
    """The model served by default (a packaged name, a local path, or a registered model pinned to its
    version) and its served name, ``?backend=`` appended unless its backend is torch."""
    return model_loading.default_model(
        config.embed_model,
        config.embed_model_path,
        model_loading.default_embed_backend(config),
        config,
        build_embedder,
    )


def export_default_embedder(config: Settings) -> bool:
    """Export the default model for its backend now, in a child process, unless nothing is to export.

    The embed replica and the gateway's query lane would otherwise both export it at their first
    start (an int8 calibration takes ~30 s on 2 cores), competing for the same cores. Returns whether
    an export ran; raises ``RuntimeError`` when it failed."""
    if not model_loading.default_export_pending(config):
        return False
    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(target=default_embedder, args=(config,))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(
            f"exporting {config.embed_model} for backend {model_loading.default_embed_backend(config)} failed (exit {child.exitcode}); "
            "start with COUNTERPOINT_EMBED_BACKEND=torch to serve it without an export"
        )
    return True


def serving_pool(config: Settings) -> EmbedderPool:
    """The models an embedding server holds: the default one, and registered ones loaded on first use."""
    name, embedder = default_embedder(config)
    return EmbedderPool(name, embedder, loader=registry_loader(config), max_models=config.embed_max_models)


class LocalEmbedder:
    """Runs the pool's embedders in this process, off the event loop, one call at a time."""

    def __init__(
        self, name: str, embedder: TextEmbedder, *, loader: Loader | None = None, max_text_tokens: int = 8192
    ) -> None:
        self.pool = EmbedderPool(name, embedder, loader=loader)
        self.max_text_tokens = max_text_tokens
        self._lock = asyncio.Lock()

    async def embed(self, texts: list[str], model: str | None = None) -> Embeddings:
        _, embedder = await asyncio.to_thread(self.pool.get, model)
        embedder.check_token_limit(texts, self.max_text_tokens)
        async with self._lock:
            return await asyncio.to_thread(embedder.embed, texts)

    async def models(self) -> list[ModelCard]:
        return self.pool.cards()

    async def load(self, model: str) -> ModelCard:
        return await self.pool.load_card(model)


class ServeEmbedder:
    """Calls the `EmbedDeployment` through its Ray Serve handle.

    A replica that died or is restarting becomes `Unavailable` (503, ``Retry-After``) naming the
    embedding service; a call that gets no answer within ``timeout_s`` (no replica came back, e.g.
    a model that fails to load) is cancelled and answered the same way, so no request hangs.
    """

    PART = "the embedding service"

    def __init__(self, handle: DeploymentHandle, *, timeout_s: float | None = None) -> None:
        self.handle = handle
        self.timeout_s = timeout_s
        self.in_flight = 0  # embed calls awaiting the replicas: the query lane reads it (`QueryLane.busy`)

    async def _call(self, method: str, *args: object) -> Any:
        try:
            return await asyncio.wait_for(getattr(self.handle, method).remote(*args), self.timeout_s)
        except Exception as exc:
            if type(exc) is TimeoutError and self.timeout_s is not None:  # ours, not one of Ray's
                raise Unavailable(
                    f"{self.PART} did not answer within {self.timeout_s:g} s (setting embed_timeout_s); "
                    "its replica may be restarting"
                ) from None
            outage = as_unavailable(exc, self.PART)
            if outage is None:
                raise
            raise outage from exc

    async def embed(self, texts: list[str], model: str | None = None) -> Embeddings:
        self.in_flight += 1
        try:
            return await self._call("embed", texts, model)
        finally:
            self.in_flight -= 1

    async def models(self) -> list[ModelCard]:
        return await self._call("models")

    async def load(self, model: str) -> ModelCard:
        return await self._call("load", model)
