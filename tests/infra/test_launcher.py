"""The launcher's stop path: `counterpoint down` (SIGINT) must reach an `up` started in the background."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from counterpoint.errors import InvalidInput
from counterpoint.infra.launcher import check_ports_free, direct_ingress_env, up
from counterpoint.infra.processes import running_pid
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


def test_up_refuses_a_port_another_program_listens_on_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        settings = unit_settings(tmp_path, ui_port=port, start_ui=True)
        with pytest.raises(InvalidInput, match=rf"port {port} \(UI\) .* COUNTERPOINT_UI_PORT"):
            up(settings, wait=False)
        assert running_pid(settings) is None  # nothing was started
        # the same port is fine for a part that is not started
        check_ports_free(unit_settings(tmp_path, ui_port=port, start_ui=False))


def test_the_cli_says_which_port_is_taken_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERPOINT_")}
        env.update(COUNTERPOINT_DATA_DIR=str(tmp_path / "data"), COUNTERPOINT_GATEWAY_PORT=str(port))
        result = subprocess.run(
            [sys.executable, "-m", "counterpoint", "up", "--no-ui", "--no-mlflow", "--no-demo"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"error: port {port} (gateway) on 127.0.0.1 is in use by another program" in result.stderr
    assert "COUNTERPOINT_GATEWAY_PORT" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
