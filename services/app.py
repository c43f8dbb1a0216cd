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
from counterpoint.settings import Settings

APP_NAME = "counterpoint"


def _replicas(
    deployment: Deployment, replicas: int, num_cpus: float, config: dict[str, object], **options: Any
) -> Application:
    """``deployment`` bound to the exported settings, with its replica count and CPUs per replica."""
    return deployment.options(
        num_replicas=replicas, ray_actor_options={"num_cpus": num_cpus}, **options
    ).bind(config)


def build_app(settings: Settings) -> Application:
    """Bind the deployments with the given settings (serialised, so replicas rebuild them)."""
    config = settings.export()
    embed = _replicas(EmbedDeployment, settings.embed_replicas, settings.embed_num_cpus, config)
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
    return GatewayDeployment.options(ray_actor_options={"num_cpus": 0}).bind(config, embed, decode, rerank)


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for `serve run` / RayService: settings from the environment plus ``args``."""
    return build_app(Settings(**args))
