"""The Serve application graph: the gateway ingress composed with the model deployments.

`build_app(settings)` is what the local launcher runs and what the Helm chart's RayService
imports (``counterpoint.services.app:app_builder``), so both run the same graph.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application, Deployment

from counterpoint.services.decode.deployment import DecodeDeployment
from counterpoint.services.embed.deployment import EmbedDeployment
from counterpoint.services.gateway.deployment import GatewayDeployment
from counterpoint.services.rerank.deployment import RerankDeployment
from counterpoint.services.vectors.deployment import VectorStoreDeployment
from counterpoint.settings import Settings

APP_NAME = "counterpoint"

FAST_PATH_ENV = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",  # no hop to a second event loop per request
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",  # request logs written in blocks, not per line
}
"""Ray Serve flags (its "throughput optimized" set, minus direct ingress) for the replicas on the
request path, with ``settings.serve_fast_path``; measured in the README's Query path section."""


def _actor_options(num_cpus: float, fast_path: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": num_cpus}
    if fast_path:
        options["runtime_env"] = {"env_vars": dict(FAST_PATH_ENV)}
    return options


def _replicas(
    deployment: Deployment,
    replicas: int,
    num_cpus: float,
    config: dict[str, object],
    fast_path: bool = False,
    **options: Any,
) -> Application:
    """``deployment`` bound to the exported settings, with its replica count and CPUs per replica."""
    return deployment.options(
        num_replicas=replicas, ray_actor_options=_actor_options(num_cpus, fast_path), **options
    ).bind(config)


def build_app(settings: Settings) -> Application:
    """Bind the deployments with the given settings (serialised, so replicas rebuild them)."""
    config = settings.export()
    fast = settings.serve_fast_path
    embed = _replicas(EmbedDeployment, settings.embed_replicas, settings.embed_num_cpus, config, fast)
    decode = None
    if settings.decode_enabled:
        decode = _replicas(
            DecodeDeployment,
            settings.decode_replicas,
            settings.decode_num_cpus,
            config,
            max_ongoing_requests=settings.decode_max_ongoing_requests,
        )
    rerank = None
    if settings.rerank_model:
        rerank = _replicas(RerankDeployment, settings.rerank_replicas, settings.rerank_num_cpus, config)
    vectors = None
    if settings.gateway_replicas > 1 and settings.vector_backend == "edge":  # one process opens the engine
        vectors = VectorStoreDeployment.options(ray_actor_options=_actor_options(0, fast)).bind(config)
    gateway = GatewayDeployment.options(
        num_replicas=settings.gateway_replicas, ray_actor_options=_actor_options(0, fast)
    )
    return gateway.bind(config, embed, decode, rerank, vectors)


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for `serve run` / RayService: settings from the environment plus ``args``."""
    return build_app(Settings(**args))
