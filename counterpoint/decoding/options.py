"""The library's decoding options, validated once, as the decoding methods receive them.

:class:`DecodingOptions` holds the keyword arguments of :func:`counterpoint.decoding.generate`
that choose tokens (the API's :class:`~counterpoint.decoding.params.GenerationParams` maps
onto them); each method reads the ones it uses and ignores the rest. :class:`GenerateOptions`
types all of ``generate``'s keyword arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from counterpoint.decoding.params import DEFAULT_CD_ALPHA, DEFAULT_PENALTY_ALPHA


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class DecodingOptions:
    """How tokens are chosen; :meth:`check` raises ``ValueError`` with a clear message."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    seed: int | None = None
    penalty_alpha: float = DEFAULT_PENALTY_ALPHA
    cd_alpha: float = DEFAULT_CD_ALPHA
    amateur: Any | None = None
    amateur_layers: int | None = None
    amateur_temperature: float = 1.0

    def check(self) -> None:
        """The checks every method shares; method-specific ones are in each method's ``from_options``."""
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        _check_unit("penalty_alpha", self.penalty_alpha)
        _check_unit("cd_alpha", self.cd_alpha)
        if not self.amateur_temperature > 0:
            raise ValueError(f"amateur_temperature must be > 0, got {self.amateur_temperature}")


class GenerateOptions(TypedDict, total=False):
    """The keyword arguments of :func:`~counterpoint.decoding.generate` and ``stream_text``.

    The last nine are :class:`DecodingOptions`' fields (same defaults); the first four say
    when generation stops: ``max_new_tokens`` (default ``DEFAULT_MAX_TOKENS``), ``stop``
    strings, ``stop_on_eos`` (default true) and ``eos_token_id`` (default: the model's).
    """

    max_new_tokens: int
    stop: str | Sequence[str] | None
    stop_on_eos: bool
    eos_token_id: int | Sequence[int] | None
    seed: int | None
    temperature: float
    top_k: int | None
    top_p: float
    penalty_alpha: float
    cd_alpha: float
    amateur: Any | None
    amateur_layers: int | None
    amateur_temperature: float
