"""Checkpoints of a training job: what they hold, writing and restoring them, reporting them to Ray.

A checkpoint directory holds rank 0's shared state (``state.pt``: step, model, optimizer,
scheduler; ``pending_metrics.json``: the metric points MLflow has not taken yet) and each rank's
RNG state (``rng_rank{r}.pt``; Ray merges the ranks' directories). The job's last report carries
``result.json`` instead, which is how a restarted worker knows the job is done.
Imports: torch and Ray Train (lazily); nothing of the workers.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_STATE = "state.pt"
CHECKPOINT_RESULT = "result.json"
PENDING_METRICS = "pending_metrics.json"  # rank 0's metric points MLflow did not take yet
CHECKPOINTS_KEPT = 2


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_checkpoint(
    directory: Path,
    *,
    rank: int,
    step: int,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    pending: list[list[Any]] | None = None,
) -> None:
    """Rank 0 writes the shared training state (and the metric points MLflow has not taken yet);
    every rank writes its own RNG state (Ray merges the dirs)."""
    if rank == 0:
        torch.save(
            {
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
            },
            directory / CHECKPOINT_STATE,
        )
        if pending:
            (directory / PENDING_METRICS).write_text(json.dumps(pending))
    torch.save(rng_state(), directory / f"rng_rank{rank}.pt")


@dataclass(frozen=True)
class Restored:
    """Where a worker starts: the step it resumes after (0: a fresh start), rank 0's pending metric
    rows, and whether the checkpoint found is the job's result (nothing left to do)."""

    step: int = 0
    pending: list[list[Any]] = field(default_factory=list)
    finished: bool = False


def restore_checkpoint(
    checkpoint: Any, *, rank: int, device: Any, model: Any, optimizer: Any, scheduler: Any
) -> Restored:
    """Load ``checkpoint`` (``ray.train.get_checkpoint()``, may be None) into the model, optimizer,
    scheduler and this rank's RNG."""
    if checkpoint is None:
        return Restored()
    with checkpoint.as_directory() as name:
        directory = Path(name)
        if (directory / CHECKPOINT_RESULT).exists():  # the job already finished (its last report)
            return Restored(finished=True)
        state = torch.load(directory / CHECKPOINT_STATE, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng_file = directory / f"rng_rank{rank}.pt"
        if rng_file.exists():
            set_rng_state(torch.load(rng_file, weights_only=True))
        pending_file = directory / PENDING_METRICS
        pending = json.loads(pending_file.read_text()) if rank == 0 and pending_file.exists() else []
        return Restored(step=int(state["step"]), pending=pending)


def report(
    metrics: Mapping[str, Any],
    *,
    checkpoint_dir_name: str | None = None,
    write: Callable[[Path], None] | None = None,
) -> None:
    """``ray.train.report(metrics)``; with ``write``, a checkpoint of what ``write(directory)`` puts
    in a fresh temporary directory goes with it. Every rank calls it at the same points (Ray
    syncs ``checkpoint_dir_name`` across ranks; a rank without ``write`` adds no files)."""
    import ray.train

    if write is None:
        ray.train.report(dict(metrics), checkpoint=None, checkpoint_dir_name=checkpoint_dir_name)
        return
    with tempfile.TemporaryDirectory(prefix="counterpoint-ckpt-") as tmp:
        write(Path(tmp))
        checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(dict(metrics), checkpoint=checkpoint, checkpoint_dir_name=checkpoint_dir_name)


def write_result(result: Mapping[str, Any]) -> Callable[[Path], None]:
    """A ``write`` for :func:`report`: the job's final ``result.json``."""
    return lambda directory: (directory / CHECKPOINT_RESULT).write_text(json.dumps(result, indent=2))
