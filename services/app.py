"""The Serve application graph: the gateway ingress composed with the model deployments.

`build_app(settings)` is what the local launcher runs and what the Helm chart's RayService
imports (``counterpoint.services.app:app_builder``), so both run the same graph.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from counterpoint.services.decode.deployment import DecodeDeployment
from counterpoint.services.embed.deployment import EmbedDeployment
from counterpoint.services.gateway.deployment import GatewayDeployment
from counterpoint.services.rerank.deployment import RerankDeployment
from counterpoint.settings import Settings

APP_NAME = "counterpoint"


def build_app(settings: Settings) -> Application:
    """Bind the deployments with the given settings (serialised, so replicas rebuild them)."""
    config = settings.export()
    embed = EmbedDeployment.options(
        num_replicas=settings.embed_replicas,
        ray_actor_options={"num_cpus": settings.embed_num_cpus},
    ).bind(config)
    decode = None
    if settings.decode_enabled:
        decode = DecodeDeployment.options(
            num_replicas=settings.decode_replicas,
            max_ongoing_requests=settings.decode_max_ongoing_requests,
            ray_actor_options={"num_cpus": settings.decode_num_cpus},
        ).bind(config)
    rerank = None
    if settings.rerank_model:
        rerank = RerankDeployment.options(
            num_replicas=settings.rerank_replicas,
            ray_actor_options={"num_cpus": settings.rerank_num_cpus},
        ).bind(config)
    return GatewayDeployment.options(ray_actor_options={"num_cpus": 0}).bind(config, embed, decode, rerank)


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for `serve run` / RayService: settings from the environment plus ``args``."""
    return build_app(Settings(**args))
