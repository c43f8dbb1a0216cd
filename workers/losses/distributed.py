"""Cross-worker negatives: an autograd-aware all-gather that is a no-op outside ``torch.distributed``.

With W workers of local batch B, gathering the candidates (positives, hard negatives) gives every
anchor W·B - 1 in-batch negatives instead of B - 1, at the price of one all-gather per input.

Design: the contrastive losses take ``gather: bool`` (constructor) and call :func:`gather_embeddings`
themselves, because only the loss knows which inputs are candidates and where each anchor's positive
lands after gathering: this worker's rows start at ``offset = sum(local sizes of lower ranks)``
(``rank * B`` when every worker has B rows), so anchor ``i``'s target is ``offset + i``. The
training step therefore looks the same with or without workers, and composes with GradCache (the
gather runs inside the loss on the cached embedding leaves).

Scaling convention, identical to one process on the global batch:

* each worker's loss is the mean over its **local** anchors (against all gathered candidates);
* the backward of the gather all-reduces (sums) the embedding gradients, so worker ``r`` receives
  ``Σ_r' ∂L_r'/∂e_r``: the contributions of every worker's loss through its own embeddings;
* parameter gradients are then **averaged** across workers, as DDP does (or
  :func:`average_gradients` when the model is not wrapped in DDP, and always for parameters that
  live in the loss itself, such as a learnable temperature).

Then mean-over-workers of the losses equals the global-batch loss, and the averaged gradients equal
the global-batch gradients (for equal local batch sizes; unequal sizes are gathered correctly but the
mean of per-worker means then weights examples unequally).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed(group: Any = None) -> bool:
    """True when a process group with more than one worker is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


@dataclass(frozen=True)
class Gathered:
    """Rows of every worker concatenated in rank order, and where this worker's rows start."""

    embeddings: Tensor
    offset: int
    sizes: tuple[int, ...]


class _AllGatherWithGrad(torch.autograd.Function):
    """Forward: all-gather rows (padded to the largest worker). Backward: all-reduce the gradient
    of the gathered tensor (sum over workers) and hand back this worker's slice."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, sizes: tuple[int, ...], rank: int, group: Any) -> Tensor:
        ctx.group = group
        ctx.start = sum(sizes[:rank])
        ctx.size = sizes[rank]
        largest = max(sizes)
        local = tensor.contiguous()
        if local.shape[0] < largest:
            pad = local.new_zeros((largest - local.shape[0], *local.shape[1:]))
            local = torch.cat([local, pad])
        parts = [torch.empty_like(local) for _ in sizes]
        dist.all_gather(parts, local, group=group)
        return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad[ctx.start : ctx.start + ctx.size], None, None, None


def gather_embeddings(embeddings: Tensor, group: Any = None) -> Gathered:
    """All-gather ``embeddings`` (``(n, ...)``, n may differ per worker) along dim 0, keeping gradients.

    Every worker must call this in the same order. Outside ``torch.distributed`` (or with one worker)
    it returns the input unchanged with ``offset=0``.
    """
    if not is_distributed(group):
        return Gathered(embeddings, 0, (embeddings.shape[0],))
    world = dist.get_world_size(group)
    rank = dist.get_rank(group)
    size = torch.tensor([embeddings.shape[0]], dtype=torch.long, device=embeddings.device)
    sizes_t = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes_t, size, group=group)
    sizes = tuple(int(s.item()) for s in sizes_t)
    gathered = _AllGatherWithGrad.apply(embeddings, sizes, rank, group)
    return Gathered(gathered, sum(sizes[:rank]), sizes)


def all_gather_with_grad(embeddings: Tensor, group: Any = None) -> Tensor:
    """:func:`gather_embeddings` without the bookkeeping: just the concatenated rows."""
    return gather_embeddings(embeddings, group).embeddings


def average_gradients(parameters: Iterable[torch.nn.Parameter], group: Any = None) -> None:
    """All-reduce-average ``.grad`` of ``parameters`` across workers (what DDP does after backward).

    Use it for parameters DDP does not see (a loss's learnable temperature) or for a model that is
    not wrapped in DDP. A no-op outside ``torch.distributed``.
    """
    if not is_distributed(group):
        return
    world = dist.get_world_size(group)
    for param in parameters:
        if param.grad is not None:
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM, group=group)
            param.grad.div_(world)
