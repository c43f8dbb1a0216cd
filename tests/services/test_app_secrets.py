"""Secrets never travel as replica init arguments (Ray shows those in its state API and dashboard):
replicas read them from the environment the launcher (or the Helm chart) gives them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from counterpoint.services.app import build_app
from counterpoint.settings import SECRET_FIELDS, Settings
from tests.settings_factory import unit_settings

SECRETS = {
    "database_url": "postgresql+psycopg://cp:db-pass-123@db:5432/cp",
    "qdrant_api_key": "qdrant-key-456",
    "api_key": "cp_client_789",
    "admin_key": "admin-boot-000",
    "redis_url": "redis://:redis-pass-321@redis:6379/0",
}


def test_every_secret_field_is_listed() -> None:
    assert set(SECRETS) == set(SECRET_FIELDS)


def test_the_serve_graph_carries_no_secret(tmp_path: Path) -> None:
    from ray.serve._private.build_app import build_app as build_deployments

    settings = unit_settings(tmp_path, rerank_model="tiny-ce", **SECRETS)
    built = build_deployments(build_app(settings), name="counterpoint")
    assert {d.name for d in built.deployments} >= {"gateway", "embed", "rerank"}
    for deployment in built.deployments:
        seen = json.dumps(
            [repr(deployment.init_args), repr(deployment.init_kwargs), deployment.ray_actor_options],
            default=repr,
        )
        for name, secret in SECRETS.items():
            assert secret not in seen and secret.split("@")[0] not in seen, (deployment.name, name)


def test_a_replica_rebuilds_the_secrets_from_the_launcher_s_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = unit_settings(tmp_path, **SECRETS)
    exported = settings.export()
    assert not set(SECRET_FIELDS) & set(exported)
    env = settings.secret_env()
    assert env["COUNTERPOINT_ADMIN_KEY"] == SECRETS["admin_key"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    replica = Settings(**exported)  # what a Serve replica does with its init argument
    assert replica.database_url == SECRETS["database_url"]
    for name in ("qdrant_api_key", "api_key", "admin_key", "redis_url"):
        assert getattr(replica, name).get_secret_value() == SECRETS[name]
    assert replica.db_url == settings.db_url and replica.data_dir == settings.resolved_data_dir


def test_several_gateway_replicas_need_a_shared_rate_limit_store(tmp_path: Path) -> None:
    from ray.serve._private.build_app import build_app as build_deployments

    from counterpoint.errors import InvalidInput
    from counterpoint.infra.launcher import check_shared_state

    alone = unit_settings(tmp_path, gateway_replicas=2)
    with pytest.raises(InvalidInput, match=r"gateway_replicas=2 needs redis_url .* 2 times its limit"):
        check_shared_state(alone)
    shared = unit_settings(tmp_path, gateway_replicas=2, redis_url="redis://127.0.0.1:6379/0")
    check_shared_state(shared)
    check_shared_state(unit_settings(tmp_path))
    built = build_deployments(build_app(shared), name="counterpoint")
    gateway = next(d for d in built.deployments if d.name == "gateway")
    assert gateway.num_replicas == 2
