"""Embedding gradients accumulated sparsely into dense buffers that live for the whole job.

Why: a dense embedding backward builds a fresh ``vocab x dim`` gradient (30522 x 384 floats, 47 MB,
for MiniLM) for every forward pass, zero-fills it, scatters a few thousand rows into it, and autograd
then adds it to ``.grad``. A bi-encoder step runs two or three forward passes, and on CPU the fresh
buffers are new pages from the kernel each time: ~100 ms of a ~1 s MiniLM step. With
``nn.Embedding.sparse`` the backward yields only the touched rows, which autograd adds in place into
a dense ``.grad`` that is already there, so each step costs one in-place zeroing of the buffer.
The optimizer, clipping and the cross-worker all-reduce still see an ordinary dense gradient with the
same values (the sum of the same rows, in another order).
"""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingGradients:
    """Sparse backward + persistent dense ``.grad`` for every trainable ``nn.Embedding`` of a model.

    Call :meth:`reset` after ``optimizer.zero_grad(set_to_none=True)`` at every step: it puts the
    zeroed buffers back as the embeddings' ``.grad``, ready for in-place accumulation.
    """

    def __init__(self, model: nn.Module) -> None:
        self.buffers: list[tuple[nn.Parameter, torch.Tensor]] = []
        for module in model.modules():
            if isinstance(module, nn.Embedding) and module.weight.requires_grad and not module.sparse:
                module.sparse = True
                self.buffers.append((module.weight, torch.zeros_like(module.weight)))

    def reset(self) -> None:
        for weight, buffer in self.buffers:
            weight.grad = buffer.zero_()

    def __len__(self) -> int:
        return len(self.buffers)
