"""GradCache: contrastive losses over large batches with the activation memory of one chunk.

Gao, Zhang, Han, Callan 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup" (https://arxiv.org/abs/2101.06983). An in-batch-negatives loss couples every example to every
other one, so the batch cannot simply be split with gradient accumulation. GradCache splits the
*encoder* work instead, since the loss only needs the embeddings:

1. embed every input chunk by chunk **without** a graph, saving each chunk's RNG state;
2. compute the loss on the full embedding set through ``requires_grad`` leaf copies and backprop it
   to the leaves: ``g = ∂L/∂e`` (the loss graph is small, ``B x C`` similarities);
3. re-embed each chunk **with** a graph, replaying its RNG state so dropout draws the same masks,
   and backprop ``e_chunk.backward(g_chunk)``; parameter gradients accumulate chunk by chunk.

By the chain rule, ``∂L/∂θ = Σ_chunks (∂e_chunk/∂θ)ᵀ g_chunk``: the gradients equal those of the plain
loss (exactly, up to float reordering), for one extra forward pass. Only one chunk's activations are
alive at a time.

Usage (the training step is the same as without caching: ``loss.backward()``)::

    cache = GradCache(lambda features: model(features)["sentence_embedding"], chunk_size=32)
    loss = cache(InfoNCELoss(), anchor_features, positive_features, negative_features)
    loss.backward()          # runs steps 2-3; scaling (AMP, accumulation) reaches every chunk
    optimizer.step()

Steps 2-3 run in a hook on the returned loss, so ``(loss / accumulation).backward()`` scales every
gradient, and loss parameters (a learnable temperature) get theirs in step 2. Under ``torch.no_grad``
the call only embeds in chunks and returns the loss.

DDP: pass ``no_sync=ddp_model.no_sync`` so gradients are all-reduced once, on the last chunk's
backward, not once per chunk. Cross-worker negatives work unchanged: a loss built with ``gather=True``
gathers the cached leaves in step 2, whose backward sends each worker its embedding gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor

Features = Any
"""One input column: a Tensor, a mapping of per-example tensors (tokenizer output; non-tensor values
and 0-d tensors are copied to every chunk), or a sequence of examples (e.g. texts)."""


def batch_size(features: Features) -> int:
    """Number of examples in ``features``."""
    if isinstance(features, Tensor):
        return int(features.shape[0])
    if isinstance(features, Mapping):
        for value in features.values():
            if isinstance(value, Tensor) and value.ndim > 0:
                return int(value.shape[0])
        raise ValueError("features mapping holds no batched tensor")
    if isinstance(features, Sequence) and not isinstance(features, str | bytes):
        return len(features)
    raise TypeError(f"cannot split features of type {type(features).__name__}")


def slice_features(features: Features, start: int, stop: int) -> Features:
    """Examples ``start:stop`` of ``features``, same container type."""
    if isinstance(features, Tensor):
        return features[start:stop]
    if isinstance(features, Mapping):
        return {
            key: value[start:stop] if isinstance(value, Tensor) and value.ndim > 0 else value
            for key, value in features.items()
        }
    return features[start:stop]


def split_features(features: Features, chunk_size: int) -> list[Features]:
    """``features`` as consecutive chunks of at most ``chunk_size`` examples."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    n = batch_size(features)
    return [slice_features(features, start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]


def _cuda_devices(features: Features) -> list[int]:
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return []
    devices = {torch.cuda.current_device()}
    values = features.values() if isinstance(features, Mapping) else [features]
    devices |= {v.device.index for v in values if isinstance(v, Tensor) and v.is_cuda}
    return sorted(d for d in devices if d is not None)


@dataclass(frozen=True)
class RngState:
    """The CPU (and CUDA) generator states at one point, replayable later."""

    cpu: Tensor
    cuda: tuple[tuple[int, Tensor], ...]

    @classmethod
    def capture(cls, features: Features = None) -> RngState:
        devices = _cuda_devices(features)
        return cls(torch.get_rng_state(), tuple((d, torch.cuda.get_rng_state(d)) for d in devices))

    @contextmanager
    def replay(self) -> Iterator[None]:
        """Run the body from this state; the global generators are restored afterwards."""
        with torch.random.fork_rng(devices=[d for d, _ in self.cuda]):
            torch.set_rng_state(self.cpu)
            for device, state in self.cuda:
                torch.cuda.set_rng_state(state, device)
            yield


class GradCache:
    """Chunked two-pass embedding with cached embedding gradients; see the module docstring.

    Args:
        encode: ``encode(chunk_features) -> (n, d)`` embeddings, with gradients when enabled.
        chunk_size: examples per forward pass (bounds activation memory).
        restore_rng: replay each chunk's RNG state in the second pass (needed when dropout is on;
            off only to demonstrate why).
        no_sync: a DDP model's ``no_sync`` method; every chunk but the last runs under it.
    """

    def __init__(
        self,
        encode: Callable[[Features], Tensor],
        chunk_size: int = 32,
        *,
        restore_rng: bool = True,
        no_sync: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.encode = encode
        self.chunk_size = chunk_size
        self.restore_rng = restore_rng
        self.no_sync = no_sync

    def __call__(
        self, loss_fn: Callable[..., Tensor], *inputs: Features | None, **loss_kwargs: Any
    ) -> Tensor:
        """Loss of ``loss_fn(*embeddings(inputs), **loss_kwargs)``; ``.backward()`` on it fills the
        parameter gradients. ``None`` inputs (e.g. no hard negatives) are passed through as ``None``."""
        chunks = [None if x is None else split_features(x, self.chunk_size) for x in inputs]
        reps: list[list[Tensor] | None] = []
        states: list[list[RngState] | None] = []
        with torch.no_grad():
            for column in chunks:
                if column is None:
                    reps.append(None)
                    states.append(None)
                    continue
                column_states: list[RngState] = []
                column_reps: list[Tensor] = []
                for chunk in column:
                    column_states.append(RngState.capture(chunk))
                    column_reps.append(self.encode(chunk))
                reps.append(column_reps)
                states.append(column_states)
        if not torch.is_grad_enabled():
            return loss_fn(*[None if r is None else torch.cat(r) for r in reps], **loss_kwargs)

        leaves = [None if r is None else torch.cat(r).detach().requires_grad_() for r in reps]
        loss = loss_fn(*leaves, **loss_kwargs)
        if loss.ndim != 0:
            raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
        proxy = loss.detach().requires_grad_()
        proxy.register_hook(partial(self._backward, loss, leaves, chunks, states))
        return proxy

    def _backward(
        self,
        loss: Tensor,
        leaves: list[Tensor | None],
        chunks: list[list[Features] | None],
        states: list[list[RngState] | None],
        grad_output: Tensor,
    ) -> None:
        with torch.enable_grad():
            # Step 2: embedding gradients (and loss-parameter gradients), scaled by grad_output.
            torch.autograd.backward(loss, grad_output)
            jobs = [
                (chunk, state, grad)
                for leaf, column, column_states in zip(leaves, chunks, states, strict=True)
                if leaf is not None
                and leaf.grad is not None
                and column is not None
                and column_states is not None
                for chunk, state, grad in zip(
                    column, column_states, leaf.grad.split([batch_size(c) for c in column]), strict=True
                )
            ]  # an input the loss did not use (no gradient) is not re-embedded
            # Step 3: re-embed each chunk with a graph and push its cached gradient through.
            for index, (chunk, state, grad) in enumerate(jobs):
                last = index == len(jobs) - 1
                sync = nullcontext() if self.no_sync is None or last else self.no_sync()
                rng = state.replay() if self.restore_rng else nullcontext()
                with sync:
                    with rng:
                        embeddings = self.encode(chunk)
                    if embeddings.requires_grad:
                        torch.autograd.backward(embeddings, grad.to(embeddings.dtype))
