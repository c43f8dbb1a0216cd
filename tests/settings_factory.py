"""The one `Settings` builder of the unit tests: a gateway's state in a temporary folder, the tiny model.

Tests import `unit_settings` (and `SMALL_LIMITS` where small limits make a test cheap) instead of
spelling out ``Settings(data_dir=tmp_path / "data", embed_model="tiny", ...)`` again; `with_limits`
copies settings with other request limits (`counterpoint.settings.Limits`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from counterpoint.settings import Settings

TINY = "tiny"
"""The served name of the tiny in-process embedder (tests/tiny_models.py)."""

SMALL_LIMITS: dict[str, int] = {
    "max_texts_per_request": 8,
    "max_documents_per_ingest": 50,
    "max_top_k": 100,
    "ingest_embed_batch": 4,
}
"""Limits small enough that tests reach them with a handful of texts."""


def unit_settings(root: Path, **overrides: Any) -> Settings:
    """Settings for an in-process gateway: state under ``root/data``, the tiny embedder, no MLflow server
    started; ``overrides`` are any settings, limits included (``max_top_k=5``)."""
    values: dict[str, Any] = {"data_dir": root / "data", "embed_model": TINY, "start_mlflow": False}
    return Settings(**{**values, **overrides})


def with_limits(settings: Settings, **limits: int) -> Settings:
    """A copy of ``settings`` whose request limits differ by ``limits`` (``max_tokens_limit=64``)."""
    return settings.model_copy(update={"limits": settings.limits.model_copy(update=limits)})
