"""Paths, renders and the helm runner shared by the chart tests and their fixtures."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "counterpoint"
PROD_VALUES = CHART / "values-production.yaml"
RELEASE = "cp"
NAMESPACE = "counterpoint"

# Each render: extra `helm template` arguments. "external" covers the parts switched off
# and pointed at servers outside the release.
RENDERS: dict[str, list[str]] = {
    "default": [],
    "production": ["-f", str(PROD_VALUES)],
    "external": [
        "--set", "qdrant.enabled=false",
        "--set", "externalQdrant.url=http://qdrant.example.com:6333",
        "--set", "secrets.qdrantApiKey.existingSecret=qdrant-key",
        "--set", "valkey.enabled=false",
        "--set", "secrets.redisUrl.existingSecret=redis-url",
        "--set", "training.enabled=false",
        "--set", "training.externalAddress=http://ray-head.example.com:8265",
        "--set", "mlflow.enabled=false",
        "--set", "mlflow.externalTrackingUri=http://mlflow.example.com:5000",
        "--set", "ui.enabled=false",
        "--set", "ingress.enabled=false",
        "--set", "podDisruptionBudget.enabled=false",
    ],
}  # fmt: skip


def run_helm(helm: Path, env: dict[str, str], *args: str) -> str:
    """Run helm; a non-zero exit fails the test with helm's own message."""
    done = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"helm {' '.join(args)} exited {done.returncode}:\n{done.stderr}{done.stdout}", pytrace=False
        )
    return done.stdout
