"""Fixtures for the fault tests: one local Ray cluster for the package, a tiny model, small helpers.

The fault tests break a real part while it works (SIGKILL a Ray Train worker, a Serve replica,
the MLflow server, the CLI; cut the database off) and check what callers see and what is left
behind. Ray starts once for the package (2 CPUs) and stops after its last test.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from counterpoint.infra.processes import free_port  # noqa: F401 - the fault tests import it from here
from tests.tiny_models import build_tiny_bi_encoder

# Test speed-ups, inherited by every process of the cluster ray.init starts (as in
# tests/workers/test_train.py): the Train controller polls its workers every 0.5 s, no preemption
# watcher, no Train metrics; and a refused MLflow call fails at once instead of after the retries
# the training job (workers/train/) allows in production (buffering and failing behave the same, minus the waits).
CLUSTER_ENV = {
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[str]:
    """A local Ray cluster (2 CPUs) shared by the package's tests; its GCS address."""
    saved = {key: os.environ.get(key) for key in CLUSTER_ENV}
    os.environ.update(CLUSTER_ENV)
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="package")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bi_encoder(tmp_path_factory.mktemp("fault-models"))


def wait_for(condition: Callable[[], object], what: str, timeout: float = 120, every: float = 0.05) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(every)


def ray_processes(title: str) -> list[psutil.Process]:
    """Live processes of this test's own Ray cluster whose title starts with ``title``.

    Ray names its worker processes ``ray::<ActorClass>`` (``ray::RayTrainWorker``,
    ``ray::ServeReplica:<app>:<deployment>``); only descendants of this process are looked at,
    so clusters of other test runs on the machine are never touched.
    """
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            cmdline = proc.cmdline()
            alive = proc.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if alive and cmdline and cmdline[0].startswith(title):
            found.append(proc)
    return found
