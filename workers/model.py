"""The bi-encoder being trained: encode texts with gradients, build the loss, compute a batch's loss.

In the spirit of Tevatron's ``EncoderModel``: one compact class whose :meth:`BiEncoder.encode`,
:meth:`BiEncoder.loss_inputs` and :meth:`BiEncoder.compute_loss` can each be overridden. The loss is
built from the job's :class:`~counterpoint.workers.config.LossConfig` by :func:`build_loss`; the batch
is a list of :class:`~counterpoint.workers.data.Example` of one kind, dispatched as

* ``pairs`` / ``triplets``   -> InfoNCE family: ``loss(anchors, positives[, negatives])``;
* ``sentences``              -> unsupervised SimCSE: the same texts encoded twice (two dropout views);
* ``scored_pairs``           -> CoSENT: ``loss(sentences1, sentences2, labels)``.

With ``gradcache_chunk`` the encoder runs chunk by chunk under :class:`GradCache` (same gradients,
activation memory of one chunk). Cross-worker negatives live in the loss (``gather=True``), so this
class does not change with the number of workers; only :func:`sync_gradients` averages gradients.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from sentence_transformers import SentenceTransformer
from torch import Tensor, nn

from counterpoint.workers.config import LossConfig, TrainConfig
from counterpoint.workers.data import Example, Kind
from counterpoint.workers.fast_dropout import use_fast_dropout
from counterpoint.workers.gradcache import GradCache
from counterpoint.workers.losses import (
    CoSENTLoss,
    DebiasedContrastiveLoss,
    FalseNegativeFilter,
    InfoNCELoss,
    MatryoshkaLoss,
    SupervisedSimCSELoss,
    UnsupervisedSimCSELoss,
    has_active_dropout,
    is_distributed,
)

MAX_GRAD_NORM = 1.0
"""Gradient clipping norm, as the Hugging Face / sentence-transformers trainers default to."""


def build_loss(config: LossConfig, world_size: int = 1, *, cross_worker_negatives: bool = True) -> nn.Module:
    """The loss module a config names, wrapped in :class:`MatryoshkaLoss` when ``matryoshka_dims`` is set.

    In-batch losses gather candidates from every worker (``gather=True``) when ``world_size > 1``
    and ``cross_worker_negatives``; CoSENT compares the pairs of one batch and never gathers.
    """
    gather = world_size > 1 and cross_worker_negatives
    false_negatives = (
        FalseNegativeFilter(margin=config.false_negative_margin)
        if config.false_negative_margin is not None
        else None
    )
    if config.learnable_temperature and config.name not in ("mnrl", "debiased"):
        raise ValueError(f"learnable_temperature applies to mnrl and debiased, not {config.name}")
    common: dict[str, Any] = {
        "symmetric": config.symmetric,
        "false_negatives": false_negatives,
        "gather": gather,
    }
    loss: nn.Module
    if config.name == "mnrl":
        loss = InfoNCELoss(config.scale, learnable_scale=config.learnable_temperature, **common)
    elif config.name == "debiased":
        loss = DebiasedContrastiveLoss(
            config.tau_plus, config.scale, learnable_scale=config.learnable_temperature, **common
        )
    elif config.name == "simcse":
        loss = UnsupervisedSimCSELoss(config.scale, **common)
    elif config.name == "simcse_supervised":
        loss = SupervisedSimCSELoss(config.scale, **common)
    elif config.name == "cosent":
        loss = CoSENTLoss(config.scale)
    else:  # pragma: no cover - LossName is a closed Literal
        raise ValueError(f"unknown loss {config.name!r}")
    if config.matryoshka_dims:
        loss = MatryoshkaLoss(loss, config.matryoshka_dims)
    return loss


@dataclass(frozen=True)
class Batch:
    """One worker's examples of one kind, as text columns (anchor, positive, ...) and optional labels."""

    kind: Kind
    columns: tuple[list[str], ...]
    labels: Tensor | None = None

    @classmethod
    def from_examples(cls, kind: Kind, examples: Sequence[Example]) -> Batch:
        if not examples:
            raise ValueError("empty batch")
        width = len(examples[0].texts)
        columns = tuple([example.texts[i] for example in examples] for i in range(width))
        labels = None
        if kind == "scored_pairs":
            labels = torch.tensor([float(example.label or 0.0) for example in examples])
        return cls(kind, columns, labels)

    def __len__(self) -> int:
        return len(self.columns[0])


def set_attention_dropout(model: nn.Module, p: float) -> int:
    """Set the dropout on attention probabilities of every attention block to ``p``; returns how many.

    Why: with ``p > 0`` a training step must draw a mask over every (head, query, key) score, which
    on CPU keeps SDPA off its fused kernel; a MiniLM step at 320 tokens is then ~2.5x slower than
    with ``p = 0``. Hidden-state dropout (and with it SimCSE's two views) is untouched.
    """
    changed = 0
    for module in model.modules():
        dropout = getattr(module, "dropout", None)
        if "Attention" in type(module).__name__ and isinstance(dropout, nn.Dropout):
            dropout.p = p
            changed += 1
    return changed


class BiEncoder(nn.Module):
    """A sentence-transformers model plus its training loss.

    Args:
        model: the model being fine-tuned (its modules, tokenizer and pooling are kept as they are).
        loss: an embedding loss (see :func:`build_loss`).
        gradcache_chunk: encode in chunks of this many texts with :class:`GradCache`.
    """

    def __init__(
        self, model: SentenceTransformer, loss: nn.Module, *, gradcache_chunk: int | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.grad_cache = GradCache(self.encode, gradcache_chunk) if gradcache_chunk else None

    @classmethod
    def from_config(
        cls, config: TrainConfig, world_size: int = 1, *, model_path: str | None = None, device: str = "cpu"
    ) -> BiEncoder:
        """Load ``config.model`` (or ``model_path``), set its max length, build the loss."""
        from counterpoint.models.paths import resolve_model_path

        path = model_path or str(resolve_model_path(config.model))
        model = SentenceTransformer(path, device=device)
        model.max_seq_length = config.max_seq_length
        if config.attention_dropout is not None:
            set_attention_dropout(model, config.attention_dropout)
        if config.fast_dropout:
            use_fast_dropout(model)
        loss = build_loss(config.loss, world_size, cross_worker_negatives=config.cross_worker_negatives)
        return cls(model, loss.to(device), gradcache_chunk=config.gradcache_chunk)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def encode(self, texts: Sequence[str]) -> Tensor:
        """``(n, d)`` sentence embeddings of ``texts``, with a graph when gradients are enabled."""
        features = self.model.preprocess(list(texts))
        features = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in features.items()}
        return self.model(features)["sentence_embedding"]

    def loss_inputs(self, batch: Batch) -> tuple[tuple[list[str], ...], dict[str, Any]]:
        """The text columns the loss embeds, in its argument order, and its extra keyword arguments."""
        if batch.kind == "sentences":
            if not has_active_dropout(self.model):
                raise ValueError(
                    "unsupervised SimCSE needs dropout active: call train() and keep dropout p > 0"
                )
            texts = batch.columns[0]
            return (texts, texts), {}  # two encodings of the same texts: two dropout views
        if batch.kind == "scored_pairs":
            assert batch.labels is not None
            return batch.columns[:2], {"labels": batch.labels.to(self.device)}
        if batch.kind == "triplets" and len(batch.columns) > 3:
            # k negatives per row: one (B*k) column, row i*k + j = negative j of anchor i
            anchors, positives, *negatives = batch.columns
            flat = [column[i] for i in range(len(anchors)) for column in negatives]
            return (anchors, positives, flat), {}
        return batch.columns, {}

    def compute_loss(self, batch: Batch) -> Tensor:
        """The scalar loss of ``batch``; ``.backward()`` on it fills the parameter gradients."""
        columns, kwargs = self.loss_inputs(batch)
        if self.grad_cache is not None:
            return self.grad_cache(self.loss, *columns, **kwargs)
        return self.loss(*[self.encode(texts) for texts in columns], **kwargs)

    def forward(self, batch: Batch) -> Tensor:
        return self.compute_loss(batch)

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        return decay_groups(self, weight_decay)


def decay_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices only (not biases, LayerNorm, the temperature)."""
    decay, no_decay = [], []
    for param in module.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _grads(parameters: Iterator[nn.Parameter]) -> list[Tensor]:
    return [p.grad for p in parameters if p.grad is not None]


def sync_gradients(module: nn.Module) -> None:
    """Average every gradient of ``module`` (model and loss) across workers, in one flat all-reduce.

    Plays DDP's part without wrapping the model: SimCSE's two views and GradCache's re-encoding run
    several forward passes per backward, which DDP's reducer does not allow. A no-op outside
    ``torch.distributed``.
    """
    if not is_distributed():
        return
    grads = _grads(module.parameters())
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(dist.get_world_size())
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()
