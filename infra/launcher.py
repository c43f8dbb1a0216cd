"""The local stack launcher behind `counterpoint up` / `counterpoint down`.

`up` starts, on one machine: a local Ray head (with its dashboard and job API), the MLflow
tracking server (SQLite backend, artifacts in the data directory), Ray Serve with the
gateway and embed deployments, and the Streamlit UI; then it indexes the demo collection in
the background while search already works. The `up` process owns the Ray head, so stopping
it (Ctrl-C, SIGTERM, or `counterpoint down` from another shell) stops everything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rich.console import Console

from counterpoint.errors import InvalidInput
from counterpoint.infra.processes import (
    free_port,
    is_alive,
    listening,
    pid_file,
    ray_agent_port,
    running_pid,
    wait_http,
)
from counterpoint.settings import Settings

console = Console(stderr=True)

PLATFORM_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_SERVE_LOG_TO_STDERR": "0",
    # MLflow's server-side job runner (huey consumers) is not used: it would cost a process per core.
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


def direct_ingress_env(settings: Settings) -> dict[str, str]:
    """Ray Serve's direct ingress with the gateway replica on ``gateway_port`` (empty when it does not
    apply: ``serve_direct_ingress`` off, a cluster given by ``ray_address`` whose processes this one does
    not start, or several gateway replicas, which would each need a port and a balancer in front).

    Serve reads these in its controller and replicas, which inherit this process's environment through
    the raylet. A stopped gateway replica's port is free for its successor at once (no quarantine: no
    external balancer holds it), and a draining replica waits no extra time for one.
    """
    if not settings.serve_direct_ingress or settings.ray_address or settings.gateway_replicas != 1:
        return {}
    return {
        "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(settings.gateway_port),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(settings.gateway_port + 1),  # one port
        "RAY_SERVE_PORT_QUARANTINE_S": "0",
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
    }


UI_SCRIPT = Path(__file__).resolve().parent.parent / "ui" / "app.py"


@dataclass
class LocalStack:
    """The processes of one local platform, started and stopped together."""

    settings: Settings
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    admin_key: str | None = None

    # --- parts -------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> None:
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.settings.logs_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ.copy()
        )

    def start_mlflow(self) -> None:
        s = self.settings
        store = s.resolved_data_dir / "mlflow"
        store.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "mlflow",
            [
                sys.executable, "-m", "mlflow", "server",
                "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
                "--artifacts-destination", str(store / "artifacts"),
                "--host", s.host, "--port", str(s.mlflow_port), "--workers", "1",
                "--allowed-hosts", f"{s.host}:{s.mlflow_port},localhost:{s.mlflow_port},127.0.0.1:{s.mlflow_port}",
            ],
        )  # fmt: skip

    def start_ui(self) -> None:
        s = self.settings
        self._spawn(
            "ui",
            [
                sys.executable, "-m", "streamlit", "run", str(UI_SCRIPT),
                "--server.address", s.host, "--server.port", str(s.ui_port),
                "--server.headless", "true", "--browser.gatherUsageStats", "false",
                "--client.toolbarMode", "viewer",  # no "Deploy" / developer menu for users
            ],
        )  # fmt: skip

    def start_ray(self) -> None:

        s = self.settings
        with ray_agent_port(s.ray_agent_port or free_port(s.host)):
            self._ray_init()

    def _ray_init(self) -> None:
        import ray

        s = self.settings
        # Serve replicas get the settings as init arguments without the secrets (Ray shows init
        # arguments in its state API and dashboard); they read them from the environment the
        # raylet, and so every worker, inherits from this process.
        os.environ.update(s.secret_env())
        os.environ.update(direct_ingress_env(s))
        ray.init(
            address=s.ray_address or "local",  # never a cluster some `ray start` left on this machine
            num_cpus=None if s.ray_address else s.ray_num_cpus,
            include_dashboard=True,
            dashboard_host=s.host,
            dashboard_port=s.ray_dashboard_port,
            object_store_memory=None if s.ray_address else s.ray_object_store_mb * 1024 * 1024,
            namespace="counterpoint",
            log_to_driver=False,
            configure_logging=False,
        )

    def start_serve(self) -> None:
        from ray import serve

        from counterpoint.services.app import APP_NAME, build_app

        s = self.settings
        # With direct ingress the gateway replica takes gateway_port; Serve still needs its proxy running.
        port = free_port(s.host) if direct_ingress_env(s) else s.gateway_port
        serve.start(http_options={"host": s.host, "port": port})
        serve.run(build_app(s), name=APP_NAME, route_prefix="/", blocking=False)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        os.environ.update(PLATFORM_ENV)
        s.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        pid_file(s).parent.mkdir(parents=True, exist_ok=True)
        pid_file(s).write_text(str(os.getpid()))

        from counterpoint.infra.db.engine import migrate

        migrate(s.db_url)
        self.admin_key = local_admin_key(s)
        if s.start_mlflow:
            with console.status("starting MLflow"):
                self.start_mlflow()
        with console.status("starting Ray"):
            self.start_ray()
        install_stop_signals()  # ray.init replaced SIGTERM's handler with one that aborts
        from counterpoint.services.embed.backends import export_default_embedder
        from counterpoint.services.model_loading import default_embed_backend

        backend = default_embed_backend(s)
        with console.status(f"exporting {s.embed_model} for backend {backend} (first start only)"):
            if export_default_embedder(s):
                console.print(f"exported {s.embed_model} for backend {backend} into {s.exports_dir}")
        with console.status("starting Ray Serve: gateway + embed (loading the model)"):
            self.start_serve()
            if not wait_http(f"{s.gateway_url}/healthz", timeout=300):
                raise RuntimeError(f"the gateway did not come up; see {s.logs_dir} and the Ray dashboard")
        if s.start_mlflow and not wait_http(f"{s.tracking_uri}/health", timeout=60):
            console.print(f"[yellow]MLflow is not answering yet; see {s.logs_dir / 'mlflow.log'}")
        if s.start_ui:
            self.start_ui()

    def print_urls(self) -> None:
        s = self.settings
        console.print("[bold green]Counterpoint is up[/]")
        console.print(f"  gateway + API   {s.gateway_url}   (docs: {s.gateway_url}/docs)")
        if s.start_ui:
            console.print(f"  dashboard (UI)  http://{s.host}:{s.ui_port}")
        if s.start_mlflow:
            console.print(f"  MLflow          {s.tracking_uri}")
        console.print(f"  Ray dashboard   http://{s.host}:{s.ray_dashboard_port}")
        console.print(f"  data directory  {s.resolved_data_dir}")
        if self.admin_key:
            console.print(f"  admin API key   {self.admin_key}")
            console.print(
                f"                  (in {s.admin_key_file}; the CLI, SDK and UI here read it from there)"
            )
        else:
            console.print(
                "  [yellow]auth is off[/] (auth_enabled=false): anyone who reaches the gateway may call it"
            )
        console.print("Stop with Ctrl-C or `counterpoint down`.")

    def stop(self) -> None:
        """Stop everything this process started; safe to call twice."""
        self._stop.set()
        for proc in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(Exception):
            import ray

            if self.settings.ray_address and ray.is_initialized():  # a cluster we joined outlives us:
                from ray import serve  # take our application off it, leave the rest

                from counterpoint.services.app import APP_NAME

                serve.delete(APP_NAME)
            ray.shutdown()  # a local head is this process's: its workers and Serve replicas go with it
        for proc in self.processes.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for log in self._logs:
            log.close()
        with contextlib.suppress(FileNotFoundError):
            pid_file(self.settings).unlink()

    def wait(self) -> None:
        """Block until Ctrl-C / SIGTERM, watching the child processes."""
        while not self._stop.wait(1.0):
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    console.print(f"[red]{name} exited with {proc.returncode}; see {self.settings.logs_dir}")
                    return


def local_admin_key(settings: Settings) -> str | None:
    """The admin key this machine's CLI, SDK and UI use, when auth is on.

    A key given in settings (``api_key`` or ``admin_key``) wins. Otherwise the key in
    ``<data_dir>/admin.key`` is reused while the registry still accepts it, or a new admin key is
    stored (hashed) in the registry and written there, readable by this user only."""
    if not settings.auth_enabled:
        return None
    given = settings.api_key or settings.admin_key
    if given is not None:
        return given.get_secret_value()
    from counterpoint.errors import Unauthorized
    from counterpoint.infra.db.registry import Registry
    from counterpoint.services.gateway.auth import KeyStore

    with Registry.from_url(settings.db_url) as registry:
        keys = KeyStore(registry, settings)
        path = settings.admin_key_file
        if path.exists():
            with contextlib.suppress(Unauthorized):
                key = path.read_text().strip()
                keys.verify(key)
                return key
        _, key = keys.create("local-admin", ["admin"])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    path.chmod(0o600)
    return key


def install_stop_signals() -> None:
    """SIGTERM and SIGINT raise KeyboardInterrupt, which stops the stack cleanly.

    `counterpoint down` sends SIGINT; a shell starts background jobs (`up &`, nohup, scripts) with
    SIGINT ignored and Python then installs no handler: taken explicitly here, or `down` would time
    out, SIGKILL this process and leave MLflow and Streamlit orphaned.
    """
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)


def _raise_interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM and SIGINT stop the stack the same way as Ctrl-C: through `LocalStack.stop`."""
    raise KeyboardInterrupt


def check_shared_state(settings: Settings) -> None:
    """``InvalidInput`` for settings that would give several gateway replicas state of their own."""
    n = settings.gateway_replicas
    if n > 1 and settings.redis_url is None:
        raise InvalidInput(
            f"gateway_replicas={n} needs redis_url (COUNTERPOINT_REDIS_URL=redis://host:6379/0): without a "
            f"shared store each replica counts the rate limits alone, so every key would get {n} times its limit"
        )


def check_ports_free(settings: Settings) -> None:
    """Refuse to start, naming the port and its setting, when another program already listens on a
    port `up` would serve on (else Ray Serve or a server fails deep inside the start)."""
    ports = {"gateway": ("GATEWAY_PORT", settings.gateway_port)}
    if not settings.ray_address:
        ports["Ray dashboard"] = ("RAY_DASHBOARD_PORT", settings.ray_dashboard_port)
    if settings.start_mlflow:
        ports["MLflow"] = ("MLFLOW_PORT", settings.mlflow_port)
    if settings.start_ui:
        ports["UI"] = ("UI_PORT", settings.ui_port)
    for part, (variable, port) in ports.items():
        if listening(settings.host, port):
            raise InvalidInput(
                f"port {port} ({part}) on {settings.host} is in use by another program: stop it, "
                f"or set COUNTERPOINT_{variable} to a free port"
            )


def up(settings: Settings, *, wait: bool = True) -> None:
    """Start the local platform (or report the one already running) and block until stopped."""
    check_shared_state(settings)
    pid = running_pid(settings)
    if pid is not None:
        console.print(f"Counterpoint is already running (pid {pid}) for {settings.resolved_data_dir}.")
        console.print(f"  gateway {settings.gateway_url}; stop it with `counterpoint down`.")
        return
    check_ports_free(settings)
    stack = LocalStack(settings)
    install_stop_signals()
    try:
        stack.start()
        stack.print_urls()
        if settings.demo:
            from counterpoint.infra.demo import start_demo_indexing

            start_demo_indexing(settings, stack._stop)
        if wait:
            stack.wait()
    except KeyboardInterrupt:
        console.print("stopping Counterpoint ...")
    finally:
        stack.stop()
        console.print("stopped.")


def down(settings: Settings, timeout: float = 120) -> bool:
    """Stop the `counterpoint up` running for this data directory; False if none was."""
    pid = running_pid(settings)
    if pid is None:
        return False
    os.kill(pid, signal.SIGINT)  # like Ctrl-C in the `up` shell: a clean, complete stop
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    return True
