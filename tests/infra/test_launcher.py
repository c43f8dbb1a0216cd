"""The launcher's stop path: `counterpoint down` (SIGINT) must reach an `up` started in the background."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from counterpoint.infra.launcher import direct_ingress_env
from tests.settings_factory import unit_settings

CHILD = """
import signal, sys, time
from counterpoint.infra.launcher import install_stop_signals
assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # as a shell starts `up &`
install_stop_signals()
try:
    print("ready", flush=True)
    time.sleep(30)
except KeyboardInterrupt:
    print("stopping cleanly", flush=True)
    sys.exit(0)
sys.exit(3)
"""


def test_sigint_stops_an_up_whose_shell_ignored_it() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "stopping cleanly" in out
    assert time.monotonic() - started < 10


def test_the_agent_port_patch_still_reaches_ray() -> None:
    """`ray_agent_port` subclasses a private Ray class: a Ray upgrade that changes it must fail here."""
    import inspect

    from ray._private import parameter

    from counterpoint.infra.processes import ray_agent_port

    assert "dashboard_agent_listen_port" in inspect.signature(parameter.RayParams).parameters
    original = parameter.RayParams
    with ray_agent_port(54321):
        assert parameter.RayParams(node_ip_address="127.0.0.1").dashboard_agent_listen_port == 54321
        assert parameter.RayParams(dashboard_agent_listen_port=1234).dashboard_agent_listen_port == 1234
    assert parameter.RayParams is original


def test_direct_ingress_puts_the_one_local_gateway_replica_on_the_gateway_port(tmp_path: Path) -> None:
    """`up` on its own Ray with one gateway replica: Serve's replica takes the gateway port itself."""
    env = direct_ingress_env(unit_settings(tmp_path, gateway_port=18123))
    assert env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    # Serve hands out ports from [MIN, MAX): exactly the gateway port
    assert (env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"], env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"]) == (
        "18123",
        "18124",
    )
    assert env["RAY_SERVE_PORT_QUARANTINE_S"] == "0"  # a restarted replica gets its port back at once


def test_direct_ingress_is_off_where_one_port_cannot_serve_every_replica(tmp_path: Path) -> None:
    assert direct_ingress_env(unit_settings(tmp_path, serve_direct_ingress=False)) == {}
    # a cluster started elsewhere: its processes never see this environment
    assert direct_ingress_env(unit_settings(tmp_path, ray_address="ray://head:10001")) == {}
    # two gateway replicas on a node would need two ports and a balancer in front
    two = unit_settings(tmp_path, gateway_replicas=2, redis_url="redis://127.0.0.1:6379/0")
    assert direct_ingress_env(two) == {}
