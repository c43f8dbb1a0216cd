"""The loop every Ray Train worker runs: :func:`train_loop_per_worker` and :class:`WorkerJob`.

Each step trains on this worker's share of the global batch (:class:`~.plan.StepPlan`); every
``report_every`` steps the loop reports to Ray (about a second per call on CPU, hence not every
step), every ``checkpoint_every`` steps with a checkpoint (:mod:`.checkpoints`). Rank 0 logs the
curves (:class:`~.run_logger.RunLogger`), evaluates, and at the end publishes the model
(:mod:`.publish`). The loop drives any :class:`~counterpoint.workers.trainable.TrainableModel`.
Imports: the workers' base modules and this package's lower modules; Ray Train lazily.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from counterpoint.workers.config import TrainConfig
from counterpoint.workers.data import Example, Kind, load_examples
from counterpoint.workers.train.checkpoints import (
    report,
    restore_checkpoint,
    write_checkpoint,
    write_result,
)
from counterpoint.workers.train.cluster import node_cpus, worker_threads
from counterpoint.workers.train.job_state import registry_update
from counterpoint.workers.train.plan import StepPlan
from counterpoint.workers.train.publish import publish_when_reachable
from counterpoint.workers.train.run_logger import RunLogger
from counterpoint.workers.train.step import TrainStep, build_optimizer
from counterpoint.workers.trainable import Evaluate, TrainableModel, build_model

log = logging.getLogger("counterpoint.workers.train")


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker's loop; ``loop_config`` is built by :func:`~.driver.run_training`.

    Keys: ``config`` (TrainConfig as JSON), ``job_id``, ``tracking_uri``, ``mlflow_run_id``,
    ``registry_url``, ``threads``, and the testing aid ``crash_at_step`` / ``crash_marker`` (rank 0
    raises once at that step, to exercise the FailureConfig retries).
    """
    import ray.train
    import ray.train.torch

    config = TrainConfig.model_validate(loop_config["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(
        worker_threads(loop_config.get("threads"), node_cpus(), context.get_local_world_size())
    )
    torch.manual_seed(config.seed + rank)  # dropout masks differ per worker, like DDP
    device = ray.train.torch.get_device()

    kind, examples = load_examples(config.data)
    plan = StepPlan(
        len(examples),
        config.batch_size,
        world_size=world,
        seed=config.seed,
        epochs=config.epochs,
        max_steps=config.max_steps,
    )
    model = build_model(config, world, str(device))
    model.train()
    optimizer, scheduler = build_optimizer(model, config, plan.total_steps)
    restored = restore_checkpoint(
        ray.train.get_checkpoint(),
        rank=rank,
        device=device,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
    )
    if restored.finished:
        log.info("job %s already finished; nothing to do", loop_config.get("job_id"))
        return

    logger = RunLogger(
        loop_config.get("tracking_uri"),
        loop_config.get("mlflow_run_id"),
        enabled=rank == 0,
        pending=restored.pending,
    )
    try:
        job = WorkerJob(
            loop_config,
            config,
            kind=kind,
            examples=examples,
            plan=plan,
            model=model,
            train_step=TrainStep(model, optimizer, scheduler),
            rank=rank,
            world=world,
            logger=logger,
            evaluator=type(model).build_evaluator(config, kind, examples) if rank == 0 else None,
        )
        job.run(restored.step)
    except BaseException:
        logger.end("FAILED")
        raise
    logger.end("FINISHED")


@dataclass
class Window:
    """The steps since the last report: their losses and durations."""

    losses: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def add(self, loss: float, seconds: float) -> None:
        self.losses.append(loss)
        self.seconds.append(seconds)

    def close(self, plan: StepPlan, step: int, world: int) -> dict[str, float]:
        """The window's metrics (the loss averaged over every worker), and a fresh window."""
        from counterpoint.workers.losses import is_distributed

        mean_loss = torch.tensor([sum(self.losses) / len(self.losses)], dtype=torch.float64)
        if is_distributed():
            import torch.distributed as dist

            dist.all_reduce(mean_loss)
            mean_loss /= world
        metrics = {
            "train/loss": float(mean_loss),
            "train/epoch": step / plan.steps_per_epoch,
            "train/examples_per_s": plan.batch_size * len(self.seconds) / max(sum(self.seconds), 1e-9),
            "train/step_seconds": float(np.median(self.seconds)),  # robust to a slow step
        }
        self.losses, self.seconds = [], []
        return metrics


@dataclass
class WorkerJob:
    """One worker's part of a job: steps ``start + 1 .. total`` (:meth:`run`), then :meth:`finish`."""

    loop_config: Mapping[str, Any]
    config: TrainConfig
    kind: Kind
    examples: list[Example]
    plan: StepPlan
    model: TrainableModel
    train_step: TrainStep
    rank: int
    world: int
    logger: RunLogger
    evaluator: Evaluate | None

    def run(self, start_step: int) -> None:
        """Train, report, checkpoint, evaluate; then :meth:`finish`."""
        from counterpoint.workers.model import Batch

        config, plan, rank, logger = self.config, self.plan, self.rank, self.logger
        total = plan.total_steps
        if start_step:
            log.info("rank %d resumes at step %d of %d", rank, start_step, total)
            logger.set_tags({"counterpoint.resumed_from_step": start_step})
            logger.log({"train/resumed_from_step": start_step}, start_step)
        elif self.evaluator is not None and config.eval.at_start:
            logger.log(self.evaluate(), 0)  # the base model: where the curves start

        window = Window()
        latest: dict[str, float] = {}
        for step in range(start_step + 1, total + 1):
            started = time.perf_counter()
            batch = Batch.from_examples(self.kind, [self.examples[i] for i in plan.indices(step, rank)])
            loss = self.train_step(batch)
            window.add(float(loss), time.perf_counter() - started)
            self._crash_if_asked(step)

            metrics: dict[str, float] = {}
            if self.evaluator is not None and step % config.eval.every_steps == 0 and step != total:
                metrics.update(self.evaluate())
            is_checkpoint = step % config.checkpoint_every == 0 or step == total
            reporting = step % config.report_every == 0 or is_checkpoint
            if reporting:
                metrics.update(window.close(plan, step, self.world))
                metrics["train/lr"] = float(self.train_step.scheduler.get_last_lr()[0])
                if self.model.temperature is not None:
                    metrics["train/temperature"] = float(self.model.temperature)
            logger.log(metrics, step)
            latest.update(metrics)
            if reporting:
                self._report({"step": step, **latest}, step, checkpoint=is_checkpoint)
        self.finish(start_step, latest)

    def evaluate(self) -> dict[str, float]:
        assert self.evaluator is not None
        with torch.no_grad():
            return {f"eval/{k}": v for k, v in self.model.evaluate(self.evaluator).items()}

    def _crash_if_asked(self, step: int) -> None:
        """The testing aid: rank 0 raises once at ``crash_at_step`` (a marker file says it did)."""
        if self.loop_config.get("crash_at_step") == step and self.rank == 0:
            marker = Path(str(self.loop_config["crash_marker"]))
            if not marker.exists():
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
                raise RuntimeError(f"injected failure at step {step} (testing aid)")

    def _report(self, metrics: dict[str, Any], step: int, *, checkpoint: bool) -> None:
        """Rank 0 updates the registry row; every rank reports to Ray, with its checkpoint part."""
        if self.rank == 0:
            registry_update(
                self.loop_config.get("registry_url"), str(self.loop_config.get("job_id", "")), metrics=metrics
            )
        if not checkpoint:
            report(metrics)
            return

        def write(directory: Path) -> None:
            write_checkpoint(
                directory,
                rank=self.rank,
                step=step,
                model=self.model,
                optimizer=self.train_step.optimizer,
                scheduler=self.train_step.scheduler,
                pending=self.logger.pending_rows(),
            )

        report(metrics, checkpoint_dir_name=f"checkpoint_{step:07d}", write=write)

    def finish(self, start_step: int, latest: Mapping[str, float]) -> None:
        """Final evaluation, the model logged and registered (rank 0), and the last report (all ranks).

        The last report carries a small checkpoint holding ``result.json``: V2's ``Result.metrics`` are
        those of the latest checkpoint, and a restarted worker that finds it knows the job is done.
        """
        total = self.plan.total_steps
        result: dict[str, Any] = {"step": total, "resumed_from_step": start_step}
        if self.rank == 0:
            final = self.evaluate() if self.evaluator is not None else {}
            self.logger.log(final, total)
            result.update({k: v for k, v in latest.items() if k.startswith("train/")})
            result.update(final)
            result.update(
                publish_when_reachable(self.loop_config, self.config, model=self.model, logger=self.logger)
            )
        write = write_result(result) if self.rank == 0 else None
        report(result, checkpoint_dir_name=f"result_{total:07d}", write=write)
