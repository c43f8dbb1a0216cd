"""The causal LM behind a Ray Serve handle: `ServeDecoder` streams from the `DecodeDeployment`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from counterpoint.decoding.params import GenerationParams
from counterpoint.errors import CounterpointError
from counterpoint.schemas import ModelCard
from counterpoint.services.decode.events import DecodeEvent, DecoderStats, Prompt

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle


def _reraise(exc: BaseException) -> None:
    """Ray wraps errors raised in the replica; raise the platform error they carry instead."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, CounterpointError):
        raise cause from None
    raise exc


class ServeDecoder:
    """Calls the `DecodeDeployment` through its Ray Serve handle, streaming."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle
        self._streaming = handle.options(stream=True)

    async def stream(self, prompt: Prompt, params: GenerationParams) -> AsyncGenerator[DecodeEvent, None]:
        response = self._streaming.complete_stream.remote(prompt, params)
        finished = False
        try:
            async for event in response:
                yield event
            finished = True
        except Exception as exc:  # noqa: BLE001 - the replica's error, unwrapped
            finished = True
            _reraise(exc)
        finally:
            if not finished:  # the client went away: stop the replica's generation, free its slot
                response.cancel()

    async def models(self) -> list[ModelCard]:
        try:
            return await self.handle.models.remote()
        except Exception as exc:  # noqa: BLE001
            _reraise(exc)
            raise

    async def stats(self) -> DecoderStats:
        return await self.handle.stats.remote()

    async def deployment_status(self) -> str:
        """What Serve's controller says of the decode deployment (``HEALTHY``, ``UPDATING``, ...),
        asked without a replica request: a replica whose every slot is generating cannot take one."""
        from ray import serve

        status = await asyncio.to_thread(serve.status)
        app = status.applications.get(self.handle.app_name)
        deployment = app.deployments.get(self.handle.deployment_name) if app is not None else None
        return str(deployment.status.value) if deployment is not None else "NOT_DEPLOYED"
