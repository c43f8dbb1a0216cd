"""Scenarios for the cross-worker negatives test, run by each spawned gloo worker and by the
single-process reference. Kept free of heavy imports so the spawned processes start quickly."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from counterpoint.workers.gradcache import GradCache
from counterpoint.workers.losses import (
    DebiasedContrastiveLoss,
    FalseNegativeFilter,
    InfoNCELoss,
    MatryoshkaLoss,
    average_gradients,
)

GLOBAL_BATCH, NEGATIVES_PER_ANCHOR, IN_DIM = 32, 2, 12


def build_encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(IN_DIM, 24), nn.Tanh(), nn.Linear(24, 8))  # no dropout


def global_batch() -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    anchors = torch.randn(GLOBAL_BATCH, IN_DIM, generator=g)
    positives = anchors + 0.5 * torch.randn(GLOBAL_BATCH, IN_DIM, generator=g)
    negatives = torch.randn(GLOBAL_BATCH * NEGATIVES_PER_ANCHOR, IN_DIM, generator=g)  # row i*k + j
    return anchors, positives, negatives


def local_batch(rank: int, world: int) -> tuple[Tensor, Tensor, Tensor]:
    anchors, positives, negatives = global_batch()
    n = GLOBAL_BATCH // world
    k = NEGATIVES_PER_ANCHOR
    return (
        anchors[rank * n : (rank + 1) * n],
        positives[rank * n : (rank + 1) * n],
        negatives[rank * n * k : (rank + 1) * n * k],
    )


# name -> (loss factory taking gather, use GradCache, use hard negatives, wrap encoder in DDP)
SCENARIOS: dict[str, tuple[Callable[[bool], nn.Module], bool, bool, bool]] = {
    "infonce": (lambda gather: InfoNCELoss(gather=gather), False, False, False),
    "symmetric_hard_negatives": (
        lambda gather: InfoNCELoss(symmetric=True, gather=gather),
        False,
        True,
        False,
    ),
    "debiased_filtered": (
        lambda gather: DebiasedContrastiveLoss(
            0.1, scale=2.0, false_negatives=FalseNegativeFilter(), gather=gather
        ),
        False,
        True,
        False,
    ),
    "gradcache_learnable_symmetric": (
        lambda gather: InfoNCELoss(symmetric=True, learnable_scale=True, gather=gather),
        True,
        True,
        False,
    ),
    "gradcache_matryoshka_ddp": (
        lambda gather: MatryoshkaLoss(InfoNCELoss(gather=gather), dims=[8, 4]),
        True,
        True,
        True,
    ),
}


def run_scenario(name: str, rank: int, world: int, *, gather: bool = True) -> dict[str, Any]:
    """This worker's loss (mean over its local anchors) and the worker-averaged gradients."""
    make_loss, use_cache, use_negatives, use_ddp = SCENARIOS[name]
    encoder = build_encoder()
    loss_fn = make_loss(gather)
    model: nn.Module = encoder
    no_sync = None
    if use_ddp and world > 1:
        model = nn.parallel.DistributedDataParallel(encoder)
        no_sync = model.no_sync
    anchors, positives, negatives = local_batch(rank, world)
    inputs = [anchors, positives] + ([negatives] if use_negatives else [])
    if use_cache:
        loss = GradCache(model, chunk_size=4, no_sync=no_sync)(loss_fn, *inputs)
    else:
        loss = loss_fn(*[model(x) for x in inputs])
    loss.backward()
    if not (use_ddp and world > 1):  # DDP already averaged the encoder's gradients
        average_gradients(encoder.parameters())
    average_gradients(loss_fn.parameters())  # DDP never sees the loss's own parameters
    grads = {f"encoder.{n}": p.grad.clone() for n, p in encoder.named_parameters()}
    grads |= {f"loss.{n}": p.grad.clone() for n, p in loss_fn.named_parameters()}
    return {"loss": loss.item(), "grads": grads}


def worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback: no dependence on hostname resolution
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results = {name: run_scenario(name, rank, world) for name in SCENARIOS}
        results["no_gather"] = run_scenario("infonce", rank, world, gather=False)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
