"""A real two-node Ray cluster on one machine: ``ray start --head`` and a second ``ray start`` in its own
network namespace (``ip netns`` + a veth pair), so Ray sees two hosts with two addresses.

On it: a fine-tuning job with two workers, one per node (each node has one CPU), sharing in-batch
negatives across workers through torch.distributed, logged to MLflow; the embed deployment with a
replica on each node; and the second node's raylet killed mid-training, after which the node comes
back and the job resumes from its checkpoint and ends where the uninterrupted job ended.

Where namespaces are not permitted (no CAP_NET_ADMIN) the second node runs on the same address
instead, which Ray also treats as another node; the test says which variant ran.
The cluster uses Ray's token authentication (``RAY_AUTH_MODE=token``), as a real one should.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from counterpoint.infra.processes import free_port
from tests.faults.conftest import CLUSTER_ENV, wait_for
from tests.faults.test_training_faults import EVERY, STEPS, job_config, write_pairs
from tests.tiny_models import build_tiny_bi_encoder

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).parent / "ray"


@dataclass
class Node:
    """One `ray start --block` process; stopping it (SIGTERM) stops every Ray process of its node."""

    proc: subprocess.Popen[bytes]
    ip: str
    log: Path
    temp: Path

    def processes(self, title: str) -> list[psutil.Process]:
        """Live processes of this node whose command line starts with ``title``."""
        found = []
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                cmdline = child.cmdline()
                if cmdline and cmdline[0].startswith(title) and child.status() != psutil.STATUS_ZOMBIE:
                    found.append(child)
            except psutil.Error:
                continue
        return found

    def raylet(self) -> psutil.Process:
        (raylet,) = [p for p in self.processes("/") if p.cmdline()[0].endswith("/raylet")]
        return raylet

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        shutil.rmtree(self.temp, ignore_errors=True)


@dataclass
class Cluster:
    """A head on ``head_ip`` and nodes started on ``node_ip`` (inside ``netns`` when there is one)."""

    root: Path
    head_ip: str
    node_ip: str
    netns: str | None
    head_ifname: str
    node_ifname: str
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.head_ip}:{self.port}"

    def _start(self, name: str, args: list[str], ip: str, ifname: str, prefix: list[str]) -> Node:
        log = self.root / f"{name}.log"
        # its own temp dir (short: it holds Unix sockets), so no other `ray.init()` on the machine finds this
        # cluster through /tmp/ray/ray_current_cluster and joins it
        temp = Path(f"/tmp/cp-ray-{os.getpid()}-{name}")
        # gloo (torch.distributed on CPU) must talk over the link between the nodes, not the hostname's address
        env = {**self.env, "GLOO_SOCKET_IFNAME": ifname}
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [*prefix, "env", *[f"{k}={v}" for k, v in env.items()], str(RAY), "start", "--block",
                 "--node-ip-address", ip, "--num-cpus", "1", "--disable-usage-stats",
                 "--dashboard-agent-listen-port", str(free_port()), "--temp-dir", str(temp), *args],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        node = Node(proc, ip, log, temp)
        self.nodes.append(node)
        return node

    def start_head(self) -> Node:
        args = ["--head", "--port", str(self.port), "--ray-client-server-port", str(free_port())]
        head = self._start(
            "head", [*args, "--include-dashboard", "false"], self.head_ip, self.head_ifname, []
        )
        wait_for(lambda: self.alive_nodes() >= 1, "the Ray head", timeout=90, every=0.5)
        return head

    def start_node(self) -> Node:
        before = self.alive_nodes()
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        node = self._start(
            f"node-{len(self.nodes)}", ["--address", self.address], self.node_ip, self.node_ifname, prefix
        )
        wait_for(lambda: self.alive_nodes() > before, "the second node to join", timeout=90, every=0.5)
        return node

    def alive_nodes(self) -> int:
        """Nodes the cluster counts as alive, asked by a driver that joins it."""
        code = "import ray; ray.init(log_to_driver=False); print(sum(n['Alive'] for n in ray.nodes()))"
        driver = self.python(code)
        try:
            out, _ = driver.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            driver.kill()
            return 0
        return int(out.strip().splitlines()[-1]) if driver.returncode == 0 and out.strip() else 0

    def python(self, code: str, *args: str) -> subprocess.Popen[str]:
        """A driver process connected to this cluster (``RAY_ADDRESS``) running ``code``."""
        env = {**os.environ, **self.env, "RAY_ADDRESS": self.address, "PYTHONPATH": str(REPO)}
        return subprocess.Popen(
            [sys.executable, "-c", code, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("multinode")
    tag = f"{os.getpid() % 200 + 20}"
    netns, host_if, node_if = f"cpnode{tag}", f"cph{tag}", f"cpn{tag}"
    subnet = f"10.213.{tag}"
    made = _ip("netns", "add", netns).returncode == 0
    if made:
        steps = [
            ("link", "add", host_if, "type", "veth", "peer", "name", node_if),
            ("link", "set", node_if, "netns", netns),
            ("addr", "add", f"{subnet}.1/24", "dev", host_if),
            ("link", "set", host_if, "up"),
            ("-n", netns, "addr", "add", f"{subnet}.2/24", "dev", node_if),
            ("-n", netns, "link", "set", node_if, "up"),
            ("-n", netns, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            assert done.returncode == 0, f"ip {' '.join(step)}: {done.stderr}"
        spec = Cluster(root, f"{subnet}.1", f"{subnet}.2", netns, host_if, node_if)
    else:
        print("network namespaces are not permitted here: the second node runs on 127.0.0.1 too")
        spec = Cluster(root, "127.0.0.1", "127.0.0.1", None, "lo", "lo")
    spec.env = {
        **CLUSTER_ENV,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    try:
        spec.start_head()
        spec.start_node()
        yield spec
    finally:
        for node in reversed(spec.nodes):
            node.stop()
        if made:
            _ip("netns", "del", netns)  # takes its end of the veth pair, and so the pair, with it


@pytest.fixture(scope="module")
def job_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("multinode-job")
    model = build_tiny_bi_encoder(root / "model")
    pairs = write_pairs(root / "pairs.jsonl")
    with gzip.open(REPO / "counterpoint" / "data" / "stsb" / "dev.tsv.gz", "rt") as dev:
        sts = root / "sts-dev.tsv"
        sts.write_text("".join(line for _, line in zip(range(301), dev, strict=False)))  # header + 300 pairs
    config = job_config(
        model,
        pairs,
        workers=2,
        cross_worker_negatives=True,
        max_failures=3,
        experiment="multinode",
        eval={"sts": str(sts), "every_steps": 100, "uniformity_sample": 32},
    ).model_dump(mode="json")
    path = root / "job.json"
    path.write_text(json.dumps(config))
    return {"root": root, "config": path, "model": model}


def start_job(cluster: Cluster, files: dict[str, Path], job_id: str) -> subprocess.Popen[str]:
    """The job's driver, as the Ray job runtime runs it: ``python -m counterpoint.workers.train``."""
    root = files["root"]
    code = "import sys; from counterpoint.workers.train.entry import main; sys.exit(main())"
    return cluster.python(
        code, "--config", str(files["config"]), "--job-id", job_id, "--storage", str(root / "storage"),
        "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}", "--registry-url", f"sqlite:///{root / 'registry.db'}",
        "--cpus-per-worker", "1",
    )  # fmt: skip


def finish(driver: subprocess.Popen[str], timeout: float = 600) -> dict[str, Any]:
    out, err = driver.communicate(timeout=timeout)
    assert driver.returncode == 0, f"the job failed:\n{err[-4000:]}"
    return json.loads(out.strip().splitlines()[-1])


def test_two_workers_one_per_node_train_with_shared_negatives(
    cluster: Cluster, job_files: dict[str, Path]
) -> None:
    head, second = cluster.nodes[0], cluster.nodes[-1]
    driver = start_job(cluster, job_files, "two-nodes")
    wait_for(
        lambda: (
            (head.processes("ray::RayTrainWorker") and second.processes("ray::RayTrainWorker"))
            or driver.poll() is not None
        ),
        "a training worker on each node",
        timeout=300,
        every=0.2,
    )
    assert driver.poll() is None, f"the job ended first: {driver.stderr.read() if driver.stderr else ''}"
    result = finish(driver)
    assert (result["status"], result["step"]) == ("succeeded", STEPS)
    from mlflow import MlflowClient

    run = MlflowClient(f"sqlite:///{job_files['root'] / 'mlflow.db'}").get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert (run.data.params["workers"], run.data.params["cross_worker_negatives"]) == ("2", "True")
    assert "eval/sts_spearman" in run.data.metrics
    (job_files["root"] / "reference.json").write_text(json.dumps(result, default=str))


def test_a_lost_node_mid_training_resumes_from_the_checkpoint(
    cluster: Cluster, job_files: dict[str, Path]
) -> None:
    reference = json.loads((job_files["root"] / "reference.json").read_text())
    second = cluster.nodes[-1]
    driver = start_job(cluster, job_files, "lost-node")
    snapshot = job_files["root"] / "storage" / "lost-node" / "checkpoint_manager_snapshot.json"
    wait_for(
        lambda: snapshot.exists() or driver.poll() is not None, "a first checkpoint", timeout=300, every=0.1
    )
    assert driver.poll() is None, "the job ended before the node could be lost"
    assert second.processes("ray::RayTrainWorker"), "no worker on the second node"
    second.raylet().kill()  # the node's Ray processes go with it; `ray start --block` exits
    second.proc.wait(timeout=60)
    cluster.start_node()  # the machine comes back and joins again
    result = finish(driver)
    assert (result["status"], result["step"]) == ("succeeded", STEPS)
    assert 2 <= result["resumed_from_step"] < STEPS and result["resumed_from_step"] % EVERY == 0
    ours, theirs = result["eval/sts_spearman"] * 100, reference["eval/sts_spearman"] * 100
    assert abs(ours - theirs) <= 0.5, (ours, theirs)


EMBED = """
import json, sys
import ray
from ray import serve
from counterpoint.services.embed.deployment import EmbedDeployment
from counterpoint.settings import Settings

ray.init(log_to_driver=False)
config = Settings(embed_model_path=sys.argv[1], data_dir=sys.argv[2], max_seq_length=32).export()
app = EmbedDeployment.options(num_replicas=2, max_replicas_per_node=1, ray_actor_options={"num_cpus": 0.5})
handle = serve.run(app.bind(config), name="embed-check", route_prefix=None)
answers = [handle.embed.remote([f"text {i}", "another"]).result(timeout_s=120) for i in range(8)]
print(json.dumps({"dims": sorted({len(a.vectors[0]) for a in answers}), "n": len(answers)}), flush=True)
sys.stdin.readline()  # the test looks at where the replicas run, then lets the driver go
serve.delete("embed-check")
serve.shutdown()
"""


def test_the_embed_deployment_answers_with_a_replica_on_each_node(
    cluster: Cluster, job_files: dict[str, Path]
) -> None:
    head, second = cluster.nodes[0], cluster.nodes[-1]
    env = {**os.environ, **cluster.env, "RAY_ADDRESS": cluster.address, "PYTHONPATH": str(REPO)}
    driver = subprocess.Popen(
        [sys.executable, "-c", EMBED, str(job_files["model"]), str(job_files["root"] / "data")],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert driver.stdout is not None and driver.stdin is not None
    line = driver.stdout.readline()
    assert line, f"the embed driver failed:\n{driver.stderr.read() if driver.stderr else ''}"
    assert json.loads(line) == {"dims": [32], "n": 8}
    try:
        assert head.processes("ray::ServeReplica:embed-check:embed")
        assert second.processes("ray::ServeReplica:embed-check:embed")
    finally:
        driver.stdin.write("\n")
        driver.stdin.flush()
        driver.wait(timeout=120)


def test_up_joins_the_cluster_and_down_leaves_it_running(
    cluster: Cluster, job_files: dict[str, Path], tmp_path: Path
) -> None:
    """`counterpoint up --ray-address` runs the platform on a cluster the user already runs."""
    from tests.e2e.conftest import PORTS, Stack, stack_env, start

    data = tmp_path / "data"
    env = {
        **stack_env(data),
        **cluster.env,
        "COUNTERPOINT_EMBED_MODEL_PATH": str(job_files["model"]),
        "COUNTERPOINT_MAX_SEQ_LENGTH": "32",
        "COUNTERPOINT_DECODE_ENABLED": "false",
    }
    stack = Stack(data, env, f"http://127.0.0.1:{PORTS['GATEWAY_PORT']}")
    proc = start(stack, "--no-demo", "--no-mlflow", "--ray-address", cluster.address)
    try:
        with stack.client() as client:
            assert len(client.embed(["joined"]).data[0].embedding) == 32
            client.create_collection("joined")
            client.ingest("joined", [{"id": "a", "text": "a cluster the user runs"}])
            assert client.search("joined", "cluster").hits[0].id == "a"
    finally:
        stack.cli("down", timeout=180)
        proc.wait(timeout=120)
    assert cluster.alive_nodes() == 2  # the user's cluster outlives `counterpoint down`
    assert not cluster.nodes[0].processes("ray::ServeReplica:counterpoint:")  # our application left it
