"""The MLflow model registry as the gateway shows it: registered models, versions, metrics, aliases.

Clients (SDK, CLI, UI) see registered models through the gateway, so one credential and one error
shape cover them; MLflow's own browser shows the same registry. Every MLflow call runs off the event
loop; a registry that does not answer is a 503, a missing model, version or alias a 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from counterpoint.errors import NotFound, Unavailable
from counterpoint.schemas import ModelVersionInfo, RegisteredModel
from counterpoint.settings import Settings

T = TypeVar("T")

VERSIONS_SHOWN = 20
METRIC_PREFIX = "eval/"


def _when(millis: int | None) -> datetime | None:
    return datetime.fromtimestamp(millis / 1000, tz=UTC) if millis else None


class ModelRegistryService:
    """Reads and updates the MLflow model registry at ``settings.tracking_uri``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _client(self) -> Any:
        from counterpoint.infra.tracking import client

        return client(self.settings.tracking_uri)

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        import mlflow

        from counterpoint.infra.tracking import registry_error

        try:
            return await asyncio.to_thread(fn)
        except mlflow.exceptions.MlflowException as exc:
            raise registry_error(exc, what) from None
        except OSError as exc:
            raise Unavailable(f"the MLflow model registry did not answer: {exc}") from None

    def _version(self, client: Any, version: Any, aliases: dict[str, str]) -> ModelVersionInfo:
        from counterpoint.infra.model_exports import EXPORT_TAG_PREFIX

        metrics: dict[str, float] = {}
        model_type = "bi-encoder"
        if version.run_id:
            try:
                run = client.get_run(version.run_id)
                metrics = {
                    k.removeprefix(METRIC_PREFIX): float(v)
                    for k, v in run.data.metrics.items()
                    if k.startswith(METRIC_PREFIX)
                }
                model_type = run.data.tags.get("counterpoint.model_type", model_type)
            except Exception:  # noqa: BLE001 - a deleted run leaves the version without metrics
                metrics = {}
        return ModelVersionInfo(
            name=version.name,
            version=str(version.version),
            uri=f"models:/{version.name}/{version.version}",
            aliases=sorted(a for a, v in aliases.items() if v == str(version.version)),
            run_id=version.run_id,
            status=str(version.status) if version.status else None,
            created_at=_when(version.creation_timestamp),
            metrics=metrics,
            model_type=model_type,
            exports={
                k.removeprefix(EXPORT_TAG_PREFIX): str(v)
                for k, v in (version.tags or {}).items()
                if k.startswith(EXPORT_TAG_PREFIX)
            },
        )

    def _model(self, client: Any, registered: Any, *, with_versions: bool) -> RegisteredModel:
        aliases = {str(a): str(v) for a, v in (registered.aliases or {}).items()}
        versions: list[ModelVersionInfo] = []
        if with_versions:
            found = client.search_model_versions(
                f"name = '{registered.name}'", max_results=VERSIONS_SHOWN, order_by=["version_number DESC"]
            )
            versions = [self._version(client, v, aliases) for v in found]
        return RegisteredModel(
            name=registered.name,
            description=registered.description or None,
            aliases=aliases,
            versions=versions,
        )

    async def list(self) -> list[RegisteredModel]:
        def fetch() -> list[RegisteredModel]:
            client = self._client()
            return [self._model(client, m, with_versions=True) for m in client.search_registered_models()]

        return await self._call("the registered models", fetch)

    async def get(self, name: str) -> RegisteredModel:
        def fetch() -> RegisteredModel:
            client = self._client()
            return self._model(client, client.get_registered_model(name), with_versions=True)

        return await self._call(f"registered model '{name}'", fetch)

    async def set_alias(self, name: str, alias: str, version: str) -> RegisteredModel:
        """Point ``models:/name@alias`` at ``version`` (the version must exist)."""

        def update() -> None:
            client = self._client()
            try:
                client.get_model_version(name, version)
            except Exception as exc:  # noqa: BLE001
                code = getattr(exc, "error_code", "")
                if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                    raise NotFound(f"model '{name}' has no version {version}") from None
                raise
            client.set_registered_model_alias(name, alias, version)

        await self._call(f"version {version} of model '{name}'", update)
        return await self.get(name)

    async def delete_alias(self, name: str, alias: str) -> RegisteredModel:
        model = await self.get(name)
        if alias not in model.aliases:
            raise NotFound(f"model '{name}' has no alias '{alias}'; its aliases: {sorted(model.aliases)}")
        await self._call(
            f"alias '{alias}' of model '{name}'",
            lambda: self._client().delete_registered_model_alias(name, alias),
        )
        return await self.get(name)
