"""The bi-encoder being trained: encode texts with gradients, build the loss, compute a batch's loss.

In the spirit of Tevatron's ``EncoderModel``: one compact class whose :meth:`BiEncoder.encode`,
:meth:`BiEncoder.loss_inputs` and :meth:`BiEncoder.compute_loss` can each be overridden. The loss is
built from the job's :class:`~counterpoint.workers.config.LossConfig` by
:func:`~counterpoint.workers.losses.build_loss` (the loss registry); the batch
is a list of :class:`~counterpoint.workers.data.Example` of one kind, dispatched as

* ``pairs`` / ``triplets``   -> InfoNCE family: ``loss(anchors, positives[, negatives])``;
* ``sentences``              -> unsupervised SimCSE: the same texts encoded twice (two dropout views);
* ``scored_pairs``           -> CoSENT: ``loss(sentences1, sentences2, labels)``.

With ``gradcache_chunk`` the encoder runs chunk by chunk under :class:`GradCache` (same gradients,
activation memory of one chunk). Cross-worker negatives live in the loss (``gather=True``), so this
class does not change with the number of workers; only :func:`sync_gradients` averages gradients.
:class:`BiEncoder` implements :class:`~counterpoint.workers.trainable.TrainableModel`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from sentence_transformers import SentenceTransformer
from torch import Tensor, nn

from counterpoint.workers.config import TrainConfig
from counterpoint.workers.data import Example, Kind
from counterpoint.workers.dropout import apply_dropout_config, set_attention_dropout
from counterpoint.workers.gradcache import GradCache
from counterpoint.workers.losses import build_loss, has_active_dropout, is_distributed

if TYPE_CHECKING:
    from counterpoint.workers.trainable import Evaluate

__all__ = [
    "MAX_GRAD_NORM",
    "Batch",
    "BiEncoder",
    "build_loss",
    "decay_groups",
    "set_attention_dropout",
    "sync_gradients",
]

MAX_GRAD_NORM = 1.0
"""Gradient clipping norm, as the Hugging Face / sentence-transformers trainers default to."""


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
        apply_dropout_config(model, config)
        loss = build_loss(config.loss, world_size, cross_worker_negatives=config.cross_worker_negatives)
        return cls(model, loss.to(device), gradcache_chunk=config.gradcache_chunk)

    @classmethod
    def build_evaluator(cls, config: TrainConfig, kind: Kind, examples: list[Example]) -> Evaluate:
        """STS, retrieval and alignment/uniformity of the embeddings (:class:`~.evaluate.Evaluator`)."""
        from counterpoint.workers.evaluate import Evaluator

        return Evaluator(config.eval, kind, examples, seed=config.seed)

    def evaluate(self, evaluator: Evaluate) -> dict[str, float]:
        from counterpoint.workers.evaluate import st_encoder

        return evaluator(st_encoder(self.model))

    @property
    def temperature(self) -> float | None:
        """The loss's temperature (inside a Matryoshka wrapper too); None for losses without one."""
        return getattr(getattr(self.loss, "loss", self.loss), "temperature", None)

    def log_model(self, name: str = "model") -> str:
        """Log to the active MLflow run with the sentence_transformers flavor; the model URI."""
        from counterpoint.infra.tracking import log_sentence_transformer

        return log_sentence_transformer(self.model, name=name).model_uri

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
