"""The Ray side of the driver: joining or starting a cluster, and the CPUs each worker asks for.

Imports: Ray and :mod:`counterpoint.settings` (lazily).
"""

from __future__ import annotations

import math
import os


def init_ray(num_cpus: int | None = None) -> None:
    """Join the cluster named by ``RAY_ADDRESS`` (set by the Ray job runtime) or settings; else start one."""
    import ray

    if ray.is_initialized():
        return
    from counterpoint.settings import get_settings

    settings = get_settings()
    address = os.environ.get("RAY_ADDRESS") or settings.ray_address
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        # "local": a new instance, never the cluster a `ray start` on this machine last left behind
        ray.init(address="local", num_cpus=num_cpus or settings.ray_num_cpus, include_dashboard=False)


def default_cpus_per_worker(workers: int) -> float:
    """CPUs to request per worker: the CPUs free now, shared evenly, at most one node's worth.

    Free, not total: on the local stack the Serve replicas hold part of the CPUs, and a request for
    more than is free would wait forever. Below one CPU per worker the request is fractional (the
    worker then runs one torch thread); with nothing free it asks for one CPU and waits.
    """
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    largest = max((float(n.get("Resources", {}).get("CPU", 0)) for n in nodes), default=1.0)
    free = min(float(ray.available_resources().get("CPU", 0.0)), largest)
    share = free / workers
    if share >= 1:
        return float(math.floor(share))
    return round(share, 2) if share >= 0.1 else 1.0


def node_cpus() -> float:
    """The CPUs Ray counts on the node this process runs on (its ``num_cpus``, or what Ray detected)."""
    import ray

    here = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node.get("NodeID") == here:
            return float(node.get("Resources", {}).get("CPU", 1.0))
    return 1.0


def worker_threads(reserved: float | None, cpus_on_node: float, workers_on_node: int) -> int:
    """torch threads for one training worker: the node's CPUs shared by the job's workers on it, and
    never fewer than the CPUs it reserved.

    The reservation alone undercounts where other actors hold CPUs they mostly leave idle: on the local
    stack the Serve replicas hold one of two CPUs, so a job reserved one CPU and trained on one thread
    (~2x slower steps) while the other core idled. A busy replica then shares the cores with training.
    """
    share = int(cpus_on_node // max(1, workers_on_node))
    return max(1, int(reserved or 0), share)
