"""What the training loop drives: the :class:`TrainableModel` protocol and :func:`build_model`.

A bi-encoder (:class:`~counterpoint.workers.model.BiEncoder`) and a cross-encoder
(:class:`~counterpoint.workers.cross_encoder.CrossEncoderModel`) both implement it, so the loop,
the step and the publishing code never ask which kind they train. ``config.model_type`` picks the
class (:data:`MODEL_TYPES`). Imports: the workers' config and data; the model classes lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

from torch import Tensor, nn

from counterpoint.workers.config import ModelType, TrainConfig
from counterpoint.workers.data import Example, Kind

if TYPE_CHECKING:
    from counterpoint.workers.model import Batch

Evaluate = Callable[[Any], dict[str, float]]
"""What rank 0 evaluates with: called with what :meth:`TrainableModel.evaluate` hands it."""


class TrainableModel(Protocol):
    """A model plus its training loss, as the training loop uses it (an ``nn.Module``)."""

    model: Any
    """The library object being trained (a sentence-transformers ``SentenceTransformer``/``CrossEncoder``)."""

    @classmethod
    def from_config(
        cls, config: TrainConfig, world_size: int = 1, *, model_path: str | None = None, device: str = "cpu"
    ) -> TrainableModel:
        """Load ``config.model`` (or ``model_path``) and build the loss the config names."""
        ...

    @classmethod
    def build_evaluator(cls, config: TrainConfig, kind: Kind, examples: list[Example]) -> Evaluate | None:
        """What rank 0 evaluates this kind of model with (None: nothing configured)."""
        ...

    def compute_loss(self, batch: Batch) -> Tensor:
        """The scalar loss of one worker's batch; ``.backward()`` on it fills the gradients."""
        ...

    def evaluate(self, evaluator: Evaluate) -> dict[str, float]:
        """This model's metrics by ``evaluator`` (from :meth:`build_evaluator`)."""
        ...

    @property
    def temperature(self) -> float | None:
        """The loss's current temperature, when it has one (logged as ``train/temperature``)."""
        ...

    def log_model(self, name: str = "model") -> str:
        """Log the model to the active MLflow run in its library's format; returns the model URI."""
        ...

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]: ...
    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...
    def train(self, mode: bool = True) -> Any: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any: ...


MODEL_TYPES: dict[ModelType, str] = {
    "bi-encoder": "counterpoint.workers.model:BiEncoder",
    "cross-encoder": "counterpoint.workers.cross_encoder:CrossEncoderModel",
}
"""``config.model_type`` -> ``module:class`` of its :class:`TrainableModel` (imported when used)."""


def model_class(model_type: ModelType) -> type[TrainableModel]:
    module, name = MODEL_TYPES[model_type].split(":")
    return getattr(import_module(module), name)


def build_model(config: TrainConfig, world: int, device: str) -> TrainableModel:
    """The trained model: a `BiEncoder` or, for ``model_type: cross-encoder``, a `CrossEncoderModel`."""
    return model_class(config.model_type).from_config(config, world, device=device)
