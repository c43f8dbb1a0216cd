"""One optimisation step: :func:`build_optimizer` (AdamW, linear warmup/decay) and :class:`TrainStep`.

Imports: torch, transformers (lazily) and the workers' model helpers; no Ray.
"""

from __future__ import annotations

from typing import Any

import torch

from counterpoint.workers.config import TrainConfig
from counterpoint.workers.trainable import TrainableModel


def build_optimizer(model: TrainableModel, config: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    """AdamW over the model's parameter groups and a linear warmup/decay schedule over ``total_steps``.

    Fused AdamW (one kernel over all parameters, the HF trainer's default too): the for-each loop
    torch picks on CPU otherwise costs ~100 ms a step for MiniLM's 22.7M parameters.
    """
    from transformers import get_linear_schedule_with_warmup

    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(model.parameter_groups(config.weight_decay), lr=config.lr, fused=fused)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps
    )
    return optimizer, scheduler


class TrainStep:
    """One optimisation step of a model: zero the gradients, loss, backward, average the gradients
    across workers, clip, AdamW, schedule. On CPU, embeddings backprop into persistent buffers
    (:class:`~counterpoint.workers.embedding_grads.EmbeddingGradients`: no fresh 47 MB a pass).
    """

    def __init__(self, model: TrainableModel, optimizer: Any, scheduler: Any) -> None:
        from counterpoint.workers.embedding_grads import EmbeddingGradients

        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        on_cpu = next(model.parameters()).device.type == "cpu"
        self.embedding_grads = EmbeddingGradients(model) if on_cpu else None

    def __call__(self, batch: Any) -> torch.Tensor:
        from counterpoint.workers.model import MAX_GRAD_NORM, sync_gradients

        self.optimizer.zero_grad(set_to_none=True)
        if self.embedding_grads is not None:
            self.embedding_grads.reset()
        loss = self.model.compute_loss(batch)
        loss.backward()
        sync_gradients(self.model)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), MAX_GRAD_NORM)
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach()
