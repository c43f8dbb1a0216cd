"""The Serve graph: the fast-path flags reach the request-path replicas only when the setting is on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from counterpoint.services.app import FAST_PATH_ENV, build_app
from tests.settings_factory import unit_settings


def _actor_options(fast_path: bool, root: Path) -> dict[str, dict[str, Any]]:
    from ray.serve._private.build_app import build_app as build_deployments

    settings = unit_settings(root, serve_fast_path=fast_path, decode_enabled=False)
    built = build_deployments(build_app(settings), name="counterpoint")
    return {d.name: d.ray_actor_options or {} for d in built.deployments}


@pytest.mark.parametrize("fast_path", [True, False])
def test_fast_path_env_is_on_the_gateway_and_embed_replicas_only_when_set(
    tmp_path: Path, fast_path: bool
) -> None:
    options = _actor_options(fast_path, tmp_path)
    assert set(options) == {"gateway", "embed"}
    for name in ("gateway", "embed"):
        env = options[name].get("runtime_env", {}).get("env_vars", {})
        assert env == (FAST_PATH_ENV if fast_path else {})
    assert options["gateway"]["num_cpus"] == 0
