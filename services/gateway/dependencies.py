"""What the routes work with: the gateway's services, held on ``app.state`` and handed out as a dependency.

`create_app` builds one `GatewayServices` per app; a route asks for it with a parameter annotated
`Services`. The optional services (training jobs, text generation, the MLflow model registry) answer
503 when they are not configured, at the moment a route asks for them. Imports the counterpoint base
and the gateway's service modules; never the routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from counterpoint.errors import Unavailable
from counterpoint.schemas import ComponentHealth
from counterpoint.services.gateway.auth import KeyStore
from counterpoint.services.gateway.backups import Backups
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.services.gateway.generation import GenerationService
from counterpoint.services.gateway.jobs import JobService
from counterpoint.services.gateway.models import ModelRegistryService

HealthCheck = Callable[[], Awaitable[dict[str, ComponentHealth]]]

DECODE_DISABLED = (
    "text generation is not enabled on this gateway: start it with COUNTERPOINT_DECODE_ENABLED=true "
    "(the default) and a causal LM in COUNTERPOINT_DECODE_MODEL"
)
JOBS_DISABLED = "training jobs are not enabled on this gateway (no Ray job API configured)"
REGISTRY_DISABLED = "the model registry is not configured on this gateway (no MLflow tracking URI)"


@dataclass(frozen=True, slots=True)
class GatewayServices:
    """The services behind one gateway app; the optional ones may be None."""

    core: GatewayCore
    keys: KeyStore
    backups: Backups
    extra_health: HealthCheck | None = None
    job_service: JobService | None = None
    generation_service: GenerationService | None = None
    registry_service: ModelRegistryService | None = None

    def jobs(self) -> JobService:
        if self.job_service is None:
            raise Unavailable(JOBS_DISABLED)
        return self.job_service

    def generation(self) -> GenerationService:
        if self.generation_service is None:
            raise Unavailable(DECODE_DISABLED)
        return self.generation_service

    def registry(self) -> ModelRegistryService:
        if self.registry_service is None:
            raise Unavailable(REGISTRY_DISABLED)
        return self.registry_service


def gateway_services(request: Request) -> GatewayServices:
    """The dependency behind `Services`: the app's `GatewayServices`."""
    services: GatewayServices = request.app.state.services
    return services


Services = Annotated[GatewayServices, Depends(gateway_services)]
