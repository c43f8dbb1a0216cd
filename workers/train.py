"""The fine-tuning job: a Ray Train ``TorchTrainer`` loop, tracked in MLflow, resumable from checkpoints.

Three layers:

* :func:`train_loop_per_worker` runs on every Ray Train worker (gloo on CPU): it loads the model and
  this worker's share of each batch, steps AdamW with a linear warmup/decay schedule, and every
  ``report_every`` steps calls ``ray.train.report`` (about a second per call on CPU, hence not every
  step), with a checkpoint every ``checkpoint_every`` steps (model, optimizer, scheduler, step and
  each worker's RNG). Rank 0 logs the curves to MLflow, evaluates (:mod:`.evaluate`), and at the
  end logs the model with the sentence_transformers flavor and registers it.
* :func:`run_training` (the driver) creates or re-joins the job's MLflow run, runs the trainer with
  ``RunConfig(name=job_id, storage_path=storage_dir)`` and ``FailureConfig(config.max_failures)``
  (2 by default: a killed worker restarts the group from the last checkpoint), and keeps the
  registry job row current. Calling it again with the same ``job_id`` after the process died
  continues from the last checkpoint, in the same MLflow run. MLflow going away mid-job is
  buffered (:class:`RunLogger`); at the end the job waits for it, then fails saying so.
* ``python -m counterpoint.workers.train`` is the entry point the gateway submits as a Ray job.

Batches: ``batch_size`` is the **global** batch. Step ``s`` of epoch ``e`` takes rows
``perm_e[i*B:(i+1)*B]`` of a permutation seeded by ``(seed, e)`` and each of the W workers takes
its ``1/W`` slice. With cross-worker negatives the loss then equals one process on the whole batch,
so W changes the speed, not the objective; and the batch of any step is known without replaying
the ones before it, which is how a resumed job skips the steps it already did.

Resuming (Ray Train V2): the controller looks for ``{storage_path}/{name}/checkpoint_manager_snapshot.json``
when it starts; if found, the latest reported checkpoint is what ``ray.train.get_checkpoint()``
returns in the workers, both after a worker failure (retries within one ``fit``) and in a new
``fit`` with the same name and storage path (after the driver was killed). The MLflow run id is
kept next to the checkpoints (``{storage_dir}/{job_id}/counterpoint_job.json``) and in the registry.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A worker imports torch + transformers before it joins the group: on 2 busy cores that can take
# longer than Ray's 60 s default, and a timed-out start counts as a failure. (Propagated by Ray Train
# from this driver to the controller and workers.)
os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "600")
# MLflow's HTTP client retries a refused connection 7 times with a doubling backoff (about 4 minutes
# per call): a training loop would stall that long at every report while its server restarts. Three
# quick retries (~7 s), then `RunLogger` buffers the metrics and training goes on.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from counterpoint.errors import InvalidInput  # noqa: E402
from counterpoint.workers.config import TrainConfig, load_config, parse_config  # noqa: E402
from counterpoint.workers.data import Example, Kind, iter_examples, load_examples  # noqa: E402

log = logging.getLogger("counterpoint.workers.train")

JOB_STATE_FILE = "counterpoint_job.json"
CHECKPOINT_STATE = "state.pt"
CHECKPOINT_RESULT = "result.json"
PENDING_METRICS = "pending_metrics.json"  # rank 0's metric points MLflow did not take yet
CHECKPOINTS_KEPT = 2
MLFLOW_RETRY_S = 10.0  # after a failed send, metrics are buffered this long before the next try
MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit
REPO_ROOT = Path(__file__).resolve().parents[1]


# --- which examples each step trains on ---------------------------------------------------------


class StepPlan:
    """Maps a step number (1-based) to this worker's example indices, without replaying earlier steps."""

    def __init__(
        self,
        n_examples: int,
        batch_size: int,
        *,
        world_size: int = 1,
        seed: int = 0,
        epochs: int = 1,
        max_steps: int | None = None,
    ) -> None:
        if n_examples < batch_size:
            raise InvalidInput(f"data holds {n_examples} examples, fewer than batch_size={batch_size}")
        if batch_size < world_size:
            raise InvalidInput(f"batch_size={batch_size} cannot be split over {world_size} workers")
        self.n_examples = n_examples
        self.batch_size = batch_size
        self.world_size = world_size
        self.seed = seed
        self.steps_per_epoch = n_examples // batch_size  # the last partial batch is dropped
        self.total_steps = max_steps if max_steps is not None else epochs * self.steps_per_epoch
        self._epoch = -1
        self._perm = np.arange(0)

    def epoch(self, step: int) -> int:
        return (step - 1) // self.steps_per_epoch

    def global_batch(self, step: int) -> np.ndarray:
        if not 1 <= step <= self.total_steps:
            raise ValueError(f"step {step} outside 1..{self.total_steps}")
        epoch = self.epoch(step)
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_examples)
            self._epoch = epoch
        start = ((step - 1) % self.steps_per_epoch) * self.batch_size
        return self._perm[start : start + self.batch_size]

    def indices(self, step: int, rank: int = 0) -> list[int]:
        return [int(i) for i in np.array_split(self.global_batch(step), self.world_size)[rank]]


# --- paths in a config ----------------------------------------------------------------------------


def _locate(value: str, bases: list[Path]) -> str:
    """``value`` made absolute against the first base where it (or its ``.gz`` sibling) exists."""
    path = Path(value).expanduser()
    if path.is_absolute() or "://" in value:
        return value
    for base in bases:
        candidate = base / path
        if candidate.exists() or candidate.with_name(candidate.name + ".gz").exists():
            return str(candidate.resolve())
    return value


def resolve_paths(config: TrainConfig, *, config_dir: Path | None = None) -> TrainConfig:
    """Absolute data/eval/model paths, so workers find them whatever their working directory.

    Relative paths are tried against the current directory, the config file's directory, then the
    repository root (so the examples' ``counterpoint/data/...`` work from anywhere).
    """
    bases = [Path.cwd()] + ([config_dir] if config_dir else []) + [REPO_ROOT]
    data = config.data.model_copy(update={"path": _locate(config.data.path, bases)})
    updates: dict[str, Any] = {"data": data}
    eval_config = config.eval
    if eval_config.sts:
        eval_config = eval_config.model_copy(update={"sts": _locate(eval_config.sts, bases)})
    if eval_config.retrieval:
        retrieval = eval_config.retrieval.model_copy(
            update={"path": _locate(eval_config.retrieval.path, bases)}
        )
        eval_config = eval_config.model_copy(update={"retrieval": retrieval})
    if eval_config.rerank:
        rerank = eval_config.rerank.model_copy(update={"path": _locate(eval_config.rerank.path, bases)})
        eval_config = eval_config.model_copy(update={"rerank": rerank})
    updates["eval"] = eval_config
    if (Path.cwd() / config.model).is_dir() or (config_dir and (config_dir / config.model).is_dir()):
        updates["model"] = _locate(config.model, bases)
    return config.model_copy(update=updates)


def resolve_registry_models(
    config: TrainConfig, tracking_uri: str, cache_dir: Path, pins: dict[str, str] | None = None
) -> TrainConfig:
    """Download the ``models:/NAME@alias`` (or ``runs:/``) models a config names (base model, mining
    retriever, rerank first stage) into ``cache_dir``; the config then points at local directories.

    So a reranker job can mine and evaluate with the bi-encoder the loop just promoted. ``pins``
    (config field -> ``models:/NAME/VERSION``) is filled with the version each alias named; a job
    keeps it and passes it back when it resumes, so moving the alias meanwhile changes nothing.
    """
    from counterpoint.errors import CounterpointError
    from counterpoint.infra.tracking import concrete_model_ref, is_registry_ref, local_model

    pins = {} if pins is None else pins

    def local(ref: str, field: str) -> str:
        where = f"config field '{field}'"
        if is_registry_ref(ref) and field not in pins:
            try:
                pins[field] = concrete_model_ref(ref, tracking_uri)
            except CounterpointError as exc:
                raise InvalidInput(f"{where}: {exc.message}") from exc
        return local_model(pins.get(field, ref), tracking_uri, cache_dir, where=where)

    updates: dict[str, Any] = {"model": local(config.model, "model")}
    spec = config.data.hard_negatives
    if spec is not None:
        mined = spec.model_copy(update={"model": local(spec.model, "data.hard_negatives.model")})
        updates["data"] = config.data.model_copy(update={"hard_negatives": mined})
    if config.eval.rerank is not None:
        rerank = config.eval.rerank
        rerank = rerank.model_copy(update={"retriever": local(rerank.retriever, "eval.rerank.retriever")})
        updates["eval"] = config.eval.model_copy(update={"rerank": rerank})
    return config.model_copy(update=updates)


# --- checkpoints ---------------------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_checkpoint(
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
    torch.save(_rng_state(), directory / f"rng_rank{rank}.pt")


# --- rank 0's MLflow logging -------------------------------------------------------------------------


class RunLogger:
    """Rank 0's handle on the job's MLflow run (system metrics on); a no-op on other ranks.

    Metric points at steps already in the run's history are skipped, so the steps a resumed job
    replays (those after its last checkpoint) appear once in one continuous curve.

    An MLflow server that stops answering does not stop training: the points it did not take stay
    in ``pending`` (which goes into every checkpoint, so a restarted worker still has them), another
    send is tried at a report ``MLFLOW_RETRY_S`` later, and the end of the job waits for them
    (:func:`_publish_when_reachable`).
    """

    def __init__(
        self,
        tracking_uri: str | None,
        run_id: str | None,
        *,
        enabled: bool,
        pending: list[list[Any]] | None = None,
    ) -> None:
        self.enabled = bool(enabled and tracking_uri and run_id)
        self.run_id = run_id or ""
        self.tracking_uri = tracking_uri or ""
        self.logged_until: dict[str, int] = {}
        self.pending: list[Any] = []
        self.last_error: Exception | None = None
        self._retry_at = 0.0
        if not self.enabled:
            return
        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri)
        self.client = mlflow.MlflowClient(tracking_uri)
        if mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.start_run(run_id=run_id, log_system_metrics=True)
        for key in self.client.get_run(run_id).data.metrics:
            if not key.startswith("system/"):
                history = self.client.get_metric_history(run_id, key)
                self.logged_until[key] = max((m.step for m in history), default=-1)
        from mlflow.entities import Metric

        for key, value, timestamp, step in pending or []:  # kept by the checkpoint we resume from
            if step > self.logged_until.get(key, -1):
                self.pending.append(Metric(key, float(value), int(timestamp), int(step)))
        for point in self.pending:
            self.logged_until[point.key] = max(self.logged_until.get(point.key, -1), point.step)
        self.flush()

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        points = [
            Metric(key, float(value), now, step)
            for key, value in metrics.items()
            if step > self.logged_until.get(key, -1) and math.isfinite(float(value))
        ]
        for point in points:
            self.logged_until[point.key] = step
        self.pending.extend(points)
        self.flush(force=False)

    def flush(self, *, force: bool = True) -> bool:
        """Send the pending points; False (they stay pending) when MLflow did not take them.

        Without ``force`` nothing is tried until ``MLFLOW_RETRY_S`` after the last failure, so a
        server that is down costs the loop one failed call per interval, not one per report.
        """
        if not self.enabled or not self.pending:
            return True
        if not force and time.monotonic() < self._retry_at:
            return False
        try:
            while self.pending:
                chunk = self.pending[:MAX_METRICS_PER_BATCH]
                self.client.log_batch(self.run_id, metrics=chunk)
                del self.pending[: len(chunk)]
        except Exception as exc:  # noqa: BLE001 - MLflow down or failing: keep the points, train on
            if self.last_error is None:
                log.warning(
                    "MLflow at %s did not take %d metric points (%s); keeping them until it answers",
                    self.tracking_uri, len(self.pending), _first_line(exc),
                )  # fmt: skip
            self.last_error = exc
            self._retry_at = time.monotonic() + MLFLOW_RETRY_S
            return False
        if self.last_error is not None:
            log.info("MLflow at %s answers again; the buffered metric points are sent", self.tracking_uri)
            self.last_error = None
        return True

    def pending_rows(self) -> list[list[Any]]:
        """The pending points as JSON rows ``[key, value, timestamp, step]``, for a checkpoint."""
        return [[m.key, m.value, m.timestamp, m.step] for m in self.pending]

    def tags(self) -> dict[str, str]:
        return dict(self.client.get_run(self.run_id).data.tags) if self.enabled else {}

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.enabled:
            for key, value in tags.items():
                self.client.set_tag(self.run_id, key, str(value))

    def end(self, status: str) -> None:
        """End the run in this process (stops the system metrics thread); best effort when MLflow is down."""
        if self.enabled and self.mlflow.active_run() is not None:
            try:
                self.mlflow.end_run(status=status)
            except Exception as exc:  # noqa: BLE001 - never hide the error that ended the loop
                log.warning("could not end MLflow run %s: %s", self.run_id, _first_line(exc))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:500]


class TrackingUnavailable(RuntimeError):
    """MLflow stayed unreachable at the end of a job; resuming the job once it is back finishes it."""


def tracking_reachable(tracking_uri: str) -> bool:
    """Whether the MLflow server answers its health check (stores that are not servers: always)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return True
    import httpx

    try:
        return httpx.get(f"{tracking_uri.rstrip('/')}/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


@functools.lru_cache(maxsize=4)
def _registry(registry_url: str) -> Any:
    from counterpoint.infra.db.registry import Registry

    return Registry.from_url(registry_url)  # migrates once per process, then reuses the pool


def _registry_update(registry_url: str | None, job_id: str, **fields: Any) -> None:
    """Best effort: the registry row shows progress; a registry hiccup never stops training."""
    if not registry_url:
        return
    try:
        _registry(registry_url).update_job(job_id, **fields)
    except Exception as exc:  # noqa: BLE001
        log.warning("registry update of job %s failed: %s", job_id, exc)


# --- the per-worker loop ----------------------------------------------------------------------------


def _evaluate(evaluator: Any, model: Any) -> dict[str, float]:
    from counterpoint.workers.cross_encoder import CrossEncoderModel
    from counterpoint.workers.evaluate import st_encoder

    with torch.no_grad():
        metrics = (
            evaluator(model) if isinstance(model, CrossEncoderModel) else evaluator(st_encoder(model.model))
        )
        return {f"eval/{k}": v for k, v in metrics.items()}


def build_model(config: TrainConfig, world: int, device: str) -> Any:
    """The trained model: a `BiEncoder` or, for ``model_type: cross-encoder``, a `CrossEncoderModel`."""
    if config.model_type == "cross-encoder":
        from counterpoint.workers.cross_encoder import CrossEncoderModel

        return CrossEncoderModel.from_config(config, world, device=device)
    from counterpoint.workers.model import BiEncoder

    return BiEncoder.from_config(config, world, device=device)


def build_evaluator(config: TrainConfig, kind: Kind, examples: list[Example]) -> Any:
    """What rank 0 evaluates: embeddings (STS, retrieval, alignment/uniformity) or reranking."""
    if config.model_type == "cross-encoder":
        if config.eval.rerank is None:
            return None
        from counterpoint.workers.cross_encoder import RerankTask

        spec = config.eval.rerank
        return RerankTask(
            spec.path, spec.split, retriever=spec.retriever, top_k=spec.top_k, max_docs=spec.max_docs,
            max_queries=spec.max_queries, seed=config.seed, fusion_weights=spec.fusion_weights,
        )  # fmt: skip
    from counterpoint.workers.evaluate import Evaluator

    return Evaluator(config.eval, kind, examples, seed=config.seed)


def build_optimizer(model: Any, config: TrainConfig, total_steps: int) -> tuple[Any, Any]:
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

    def __init__(self, model: Any, optimizer: Any, scheduler: Any) -> None:
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


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker's loop; ``loop_config`` is built by :func:`run_training`.

    Keys: ``config`` (TrainConfig as JSON), ``job_id``, ``tracking_uri``, ``mlflow_run_id``,
    ``registry_url``, ``threads``, and the testing aid ``crash_at_step`` / ``crash_marker`` (rank 0
    raises once at that step, to exercise the FailureConfig retries).
    """
    import ray.train
    import ray.train.torch

    config = TrainConfig.model_validate(loop_config["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    if loop_config.get("threads"):
        torch.set_num_threads(int(loop_config["threads"]))
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

    start_step = 0
    pending: list[list[Any]] = []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state_file = Path(directory) / CHECKPOINT_STATE
            result_file = Path(directory) / CHECKPOINT_RESULT
            if result_file.exists():  # the job already finished (its last report)
                log.info("job %s already finished; nothing to do", loop_config.get("job_id"))
                return
            state = torch.load(state_file, map_location=device, weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start_step = int(state["step"])
            rng_file = Path(directory) / f"rng_rank{rank}.pt"
            if rng_file.exists():
                _set_rng_state(torch.load(rng_file, weights_only=True))
            pending_file = Path(directory) / PENDING_METRICS
            if rank == 0 and pending_file.exists():
                pending = json.loads(pending_file.read_text())

    logger = RunLogger(
        loop_config.get("tracking_uri"), loop_config.get("mlflow_run_id"), enabled=rank == 0, pending=pending
    )
    try:
        _train(
            loop_config,
            config,
            kind=kind,
            examples=examples,
            plan=plan,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            start_step=start_step,
            rank=rank,
            world=world,
            logger=logger,
            evaluator=build_evaluator(config, kind, examples) if rank == 0 else None,
        )
    except BaseException:
        logger.end("FAILED")
        raise
    logger.end("FINISHED")


def _train(
    loop_config: Mapping[str, Any],
    config: TrainConfig,
    *,
    kind: Kind,
    examples: list[Example],
    plan: StepPlan,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    start_step: int,
    rank: int,
    world: int,
    logger: RunLogger,
    evaluator: Any,
) -> None:
    """Steps ``start_step + 1 .. total``: train, report, checkpoint, evaluate; then :func:`_finish`."""
    import ray.train
    import torch.distributed as dist

    from counterpoint.workers.losses import is_distributed
    from counterpoint.workers.model import Batch

    job_id = str(loop_config.get("job_id", ""))
    registry_url = loop_config.get("registry_url")
    total = plan.total_steps
    if start_step:
        log.info("rank %d resumes at step %d of %d", rank, start_step, total)
        logger.set_tags({"counterpoint.resumed_from_step": start_step})
        logger.log({"train/resumed_from_step": start_step}, start_step)
    elif evaluator is not None and config.eval.at_start:
        logger.log(_evaluate(evaluator, model), 0)  # the base model: where the curves start

    window_losses: list[float] = []
    window_times: list[float] = []
    latest: dict[str, float] = {}
    crash_at = loop_config.get("crash_at_step")
    train_step = TrainStep(model, optimizer, scheduler)
    for step in range(start_step + 1, total + 1):
        started = time.perf_counter()
        loss = train_step(Batch.from_examples(kind, [examples[i] for i in plan.indices(step, rank)]))
        window_times.append(time.perf_counter() - started)
        window_losses.append(float(loss))

        if crash_at == step and rank == 0:
            marker = Path(str(loop_config["crash_marker"]))
            if not marker.exists():
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
                raise RuntimeError(f"injected failure at step {step} (testing aid)")

        metrics: dict[str, float] = {}
        if evaluator is not None and step % config.eval.every_steps == 0 and step != total:
            metrics.update(_evaluate(evaluator, model))
        is_checkpoint = step % config.checkpoint_every == 0 or step == total
        if step % config.report_every == 0 or is_checkpoint:
            mean_loss = torch.tensor([sum(window_losses) / len(window_losses)], dtype=torch.float64)
            if is_distributed():
                dist.all_reduce(mean_loss)
                mean_loss /= world
            metrics.update(
                {
                    "train/loss": float(mean_loss),
                    "train/lr": float(scheduler.get_last_lr()[0]),
                    "train/epoch": step / plan.steps_per_epoch,
                    "train/examples_per_s": plan.batch_size
                    * len(window_times)
                    / max(sum(window_times), 1e-9),
                    "train/step_seconds": float(np.median(window_times)),  # robust to a slow step
                }
            )
            loss_module = getattr(model, "loss", None)
            temperature = getattr(getattr(loss_module, "loss", loss_module), "temperature", None)
            if temperature is not None:
                metrics["train/temperature"] = float(temperature)
            window_losses, window_times = [], []
        logger.log(metrics, step)
        latest.update(metrics)
        if step % config.report_every == 0 or is_checkpoint:
            report = {"step": step, **latest}
            if rank == 0:
                _registry_update(registry_url, job_id, metrics=report)
            if is_checkpoint:
                with tempfile.TemporaryDirectory(prefix="counterpoint-ckpt-") as tmp:
                    _write_checkpoint(
                        Path(tmp),
                        rank=rank,
                        step=step,
                        model=model,
                        optimizer=optimizer,
                        scheduler=scheduler,
                        pending=logger.pending_rows(),
                    )
                    ray.train.report(
                        report,
                        checkpoint=ray.train.Checkpoint.from_directory(tmp),
                        checkpoint_dir_name=f"checkpoint_{step:07d}",
                    )
            else:
                ray.train.report(report)

    _finish(
        loop_config,
        config,
        model=model,
        rank=rank,
        logger=logger,
        evaluator=evaluator,
        total=total,
        start_step=start_step,
        latest=latest,
    )


def _finish(
    loop_config: Mapping[str, Any],
    config: TrainConfig,
    *,
    model: Any,
    rank: int,
    logger: RunLogger,
    evaluator: Any,
    total: int,
    start_step: int,
    latest: Mapping[str, float],
) -> None:
    """Final evaluation, the model logged and registered (rank 0), and the last report (all ranks).

    The last report carries a small checkpoint holding ``result.json``: V2's ``Result.metrics`` are
    those of the latest checkpoint, and a restarted worker that finds it knows the job is done.
    """
    import ray.train

    result: dict[str, Any] = {"step": total, "resumed_from_step": start_step}
    if rank == 0:
        final = _evaluate(evaluator, model) if evaluator is not None else {}
        logger.log(final, total)
        result.update({k: v for k, v in latest.items() if k.startswith("train/")})
        result.update(final)
        result.update(_publish_when_reachable(loop_config, config, model=model, logger=logger))
    with tempfile.TemporaryDirectory(prefix="counterpoint-result-") as tmp:
        checkpoint = None
        if rank == 0:
            (Path(tmp) / CHECKPOINT_RESULT).write_text(json.dumps(result, indent=2))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(result, checkpoint=checkpoint, checkpoint_dir_name=f"result_{total:07d}")


def _publish_when_reachable(
    loop_config: Mapping[str, Any], config: TrainConfig, *, model: Any, logger: RunLogger
) -> dict[str, Any]:
    """Send the buffered metrics, then :func:`_publish_model`; while MLflow is unreachable, wait for
    it up to ``tracking_wait_s`` (setting train_tracking_wait_s), then fail with `TrackingUnavailable`.

    A failure while the server answers its health check is raised at once (on the second try: the
    first may have raced the server's return), so a real error does not wait out the deadline.
    """
    uri = str(loop_config.get("tracking_uri") or "")
    deadline = time.monotonic() + float(loop_config.get("tracking_wait_s") or 0.0)
    delay, failed_while_up = 1.0, 0
    while True:
        try:
            if not logger.flush() and logger.last_error is not None:
                raise logger.last_error
            return _publish_model(loop_config, config, model=model, logger=logger)
        except Exception as exc:
            if tracking_reachable(uri):
                failed_while_up += 1
                if failed_while_up >= 2:
                    raise
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TrackingUnavailable(
                    f"MLflow at {uri} is unreachable ({_first_line(exc)}): training finished, but the "
                    f"model and {len(logger.pending)} metric points are not logged; resume the job once "
                    "MLflow is back (it continues from its last checkpoint, in the same run)"
                ) from None
            log.warning("MLflow at %s unreachable; trying again for another %.0f s", uri, remaining)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 30.0)


def _publish_model(
    loop_config: Mapping[str, Any], config: TrainConfig, *, model: Any, logger: RunLogger
) -> dict[str, Any]:
    """Log the model (sentence_transformers flavor) and register it under ``config.register_as``.

    Idempotent across retries: the model URI and registered version are kept as run tags and reused.
    """
    if not logger.enabled:
        return {}
    from counterpoint.infra.tracking import log_model_directory, log_sentence_transformer, register_model

    tags = logger.tags()
    model_uri = tags.get("counterpoint.model_uri")
    if not model_uri:
        if config.model_type == "cross-encoder":
            model_uri = log_model_directory(model.model, name="model")
        else:
            model_uri = log_sentence_transformer(model.model, name="model").model_uri
        logger.set_tags({"counterpoint.model_uri": model_uri, "counterpoint.model_type": config.model_type})
    out: dict[str, Any] = {"model_uri": model_uri}
    if config.register_as:
        version = tags.get("counterpoint.registered_version")
        if not version or tags.get("counterpoint.registered_model") != config.register_as:
            version = register_model(
                model_uri,
                config.register_as,
                str(loop_config["tracking_uri"]),
                tags={"counterpoint.job_id": str(loop_config.get("job_id", "")), "run_id": logger.run_id},
            )
            logger.set_tags(
                {
                    "counterpoint.registered_model": config.register_as,
                    "counterpoint.registered_version": version,
                }
            )
        out.update(
            {
                "registered_model": config.register_as,
                "registered_version": str(version),
                "registered_model_uri": f"models:/{config.register_as}/{version}",
            }
        )
    return out


# --- the driver ----------------------------------------------------------------------------------


def _read_state(job_dir: Path) -> dict[str, Any]:
    path = job_dir / JOB_STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_state(job_dir: Path, **fields: Any) -> None:
    """Update the job's state file with ``fields`` (what is not named stays, e.g. the model pins)."""
    state = {**_read_state(job_dir), **fields}
    job_dir.mkdir(parents=True, exist_ok=True)
    tmp = job_dir / f".{JOB_STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=2, default=str))
    tmp.replace(job_dir / JOB_STATE_FILE)


def default_cpus_per_worker(workers: int) -> float:
    """CPUs to request per worker: the CPUs free now, shared evenly, at most one node's worth.

    Free, not total: on the local stack the Serve replicas hold part of the CPUs, and a request for
    more than is free would wait forever. Below one CPU per worker the request is fractional (the
    worker then runs one torch thread); with nothing free it asks for one CPU and waits.
    """
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    largest = max((float(n.get("Resources", {}).get("CPU", 0)) for n in nodes), default=1.0)
    free = min(float(ray.available_resources().get("CPU", 0.0)), largest)
    share = free / workers
    if share >= 1:
        return float(math.floor(share))
    return round(share, 2) if share >= 0.1 else 1.0


def _check_enough_examples(config: TrainConfig) -> None:
    """Fail in the driver (not after three worker retries) when the data cannot fill one batch."""
    count = 0
    for count, _ in enumerate(iter_examples(config.data), start=1):  # noqa: B007
        if count >= config.batch_size:
            return
    raise InvalidInput(f"data.path holds {count} examples, fewer than batch_size={config.batch_size}")


def _mlflow_run(config: TrainConfig, job_id: str, tracking_uri: str, run_id: str | None) -> str:
    """The job's MLflow run: ``run_id`` if it still exists, else a new one with params and config."""
    from mlflow.entities import Param, RunTag

    from counterpoint.infra.tracking import client, flatten_params, get_or_create_experiment, redacted

    mlflow_client = client(tracking_uri)
    if run_id:
        try:
            mlflow_client.get_run(run_id)
            return run_id
        except Exception:  # noqa: BLE001 - deleted or another server: start a fresh run
            log.warning("MLflow run %s not found; starting a new run for job %s", run_id, job_id)
    experiment_id = get_or_create_experiment(config.experiment, tracking_uri)
    run = mlflow_client.create_run(
        experiment_id,
        run_name=f"{config.name}-{job_id[:8]}",
        tags={
            "counterpoint.job_id": job_id,
            "counterpoint.kind": "train",
            "counterpoint.model": config.model,
        },
    )
    config_dict = config.model_dump(mode="json")
    params = [Param(k, v) for k, v in flatten_params(config_dict).items()]
    for start in range(0, len(params), 100):  # log_batch takes at most 100 params
        mlflow_client.log_batch(run.info.run_id, params=params[start : start + 100])
    mlflow_client.log_batch(
        run.info.run_id, tags=[RunTag("mlflow.note.content", f"Counterpoint job {job_id}")]
    )
    mlflow_client.log_dict(run.info.run_id, redacted(config_dict), "config.yaml")
    return run.info.run_id


def _ensure_job_row(registry_url: str, job_id: str, config: TrainConfig) -> str | None:
    """Create the registry row if the gateway did not; return its stored MLflow run id."""
    from counterpoint.errors import NotFound

    registry = _registry(registry_url)
    try:
        return registry.get_job(job_id).mlflow_run_id
    except NotFound:
        registry.create_job("train", config.model_dump(mode="json"), name=config.name, job_id=job_id)
        return None


HARD_NEGATIVES_FILE = "hard_negatives.jsonl"


def mine_hard_negatives(config: TrainConfig, job_dir: Path, tracking_uri: str, run_id: str) -> TrainConfig:
    """Mine the BEIR split's hard negatives once per job (a resumed job reuses the file); the config
    then trains on the triplets. The report's counts go to the MLflow run, the file as an artifact."""
    from counterpoint.infra.tracking import client
    from counterpoint.workers.data import DataSource
    from counterpoint.workers.mining import mine_beir, write_jsonl

    spec = config.data.hard_negatives
    assert spec is not None
    target = job_dir / HARD_NEGATIVES_FILE
    if not target.is_file():
        log.info("mining hard negatives for %s (%s) with %s", config.data.path, config.data.split, spec.model)
        started = time.perf_counter()
        triplets, report = mine_beir(
            config.data.path,
            config.data.split,
            model=spec.model,
            top_k=spec.top_k,
            skip_top=spec.skip_top,
            max_score_ratio=spec.max_score_ratio,
            max_seq_length=spec.max_seq_length,
            negatives=spec.negatives,
            progress=lambda done, total: log.info("mining: embedded %d/%d documents", done, total),
        )
        staging = target.with_suffix(".tmp")
        write_jsonl(triplets, staging)
        staging.replace(target)
        mlflow_client = client(tracking_uri)
        stats = {f"mining/{k}": float(v) for k, v in report.as_dict().items()}
        stats["mining/seconds"] = time.perf_counter() - started
        for key, value in stats.items():
            mlflow_client.log_metric(run_id, key, value, step=0)
        mlflow_client.log_dict(run_id, {**report.as_dict(), "notes": report.notes}, "mining_report.json")
        mlflow_client.log_artifact(run_id, str(target))
        log.info("mined %d triplets: %s", report.triplets, report.as_dict())
    data = DataSource(path=str(target), format="jsonl", kind="triplets", limit=config.data.limit)
    return config.model_copy(update={"data": data})


def _failure_text(exc: BaseException, tracking_uri: str) -> str:
    """The error a failed job records; it says so first when MLflow is unreachable (the likely cause)."""
    text = f"{type(exc).__name__}: {exc}"
    if not tracking_reachable(tracking_uri):
        text = f"MLflow at {tracking_uri} is unreachable; resume the job once it answers again. {text}"
    return text[:10_000]


def _was_cancelled(registry_url: str | None, job_id: str) -> bool:
    """Whether the gateway cancelled this job (its stop is why the driver is failing now)."""
    if not registry_url:
        return False
    try:
        return _registry(registry_url).get_job(job_id).status == "cancelled"
    except Exception:  # noqa: BLE001
        return False


def run_training(
    config: TrainConfig,
    *,
    job_id: str,
    storage_dir: Path,
    tracking_uri: str,
    registry_url: str | None = None,
    cpus_per_worker: float | None = None,
    crash_at_step: int | None = None,
    tracking_wait_s: float | None = None,
) -> dict[str, Any]:
    """Run (or resume) training job ``job_id``; returns the final metrics and the model URI.

    Ray must be initialised (the CLI does it). ``storage_dir/job_id`` holds the checkpoints and the
    job's MLflow run id; a second call with the same ``job_id`` continues from the last checkpoint in
    the same MLflow run, and a call for a job that already succeeded returns its stored result.
    ``crash_at_step`` is a testing aid: rank 0 raises once at that step (FailureConfig retries it).
    ``tracking_wait_s`` (default: setting train_tracking_wait_s) bounds how long the end of the job
    waits for an unreachable MLflow server.

    Registry row (when ``registry_url``): ``running`` with ``mlflow_run_id``, metrics updated at every
    report, then ``succeeded`` with the final metrics, or ``failed`` with the error text.
    """
    import ray.train
    from ray.train.torch import TorchTrainer

    from counterpoint.infra.tracking import client

    storage_dir = Path(storage_dir).expanduser().resolve()
    job_dir = storage_dir / job_id
    state = _read_state(job_dir)
    if state.get("status") == "succeeded" and "result" in state:
        return dict(state["result"])
    config = resolve_paths(config)
    if config.data.hard_negatives is None:
        _check_enough_examples(config)

    stored_run_id = state.get("mlflow_run_id")
    if registry_url:
        stored_run_id = stored_run_id or _ensure_job_row(registry_url, job_id, config)
    try:
        run_id = _mlflow_run(config, job_id, tracking_uri, stored_run_id)
    except Exception as exc:
        _registry_update(registry_url, job_id, status="failed", error=_failure_text(exc, tracking_uri))
        raise
    _write_state(job_dir, job_id=job_id, mlflow_run_id=run_id, status="running", error=None)
    _registry_update(registry_url, job_id, status="running", mlflow_run_id=run_id, error=None)
    client(tracking_uri).update_run(run_id, status="RUNNING")
    try:
        pins = dict(state.get("models", {}))
        config = resolve_registry_models(config, tracking_uri, job_dir / "models", pins)
        if pins and pins != state.get("models"):
            _write_state(job_dir, models=pins)  # a resume uses these versions, wherever the alias went
            for field, ref in pins.items():
                client(tracking_uri).set_tag(run_id, f"counterpoint.model.{field}", ref)
    except Exception as exc:
        _registry_update(registry_url, job_id, status="failed", error=_failure_text(exc, tracking_uri))
        client(tracking_uri).update_run(run_id, status="FAILED")
        raise
    if config.data.hard_negatives is not None:
        config = mine_hard_negatives(config, job_dir, tracking_uri, run_id)
        _check_enough_examples(config)

    cpus = cpus_per_worker or default_cpus_per_worker(config.workers)
    threads = max(1, math.floor(cpus))
    if tracking_wait_s is None:
        from counterpoint.settings import get_settings

        tracking_wait_s = get_settings().train_tracking_wait_s
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": config.model_dump(mode="json"),
            "job_id": job_id,
            "tracking_uri": tracking_uri,
            "mlflow_run_id": run_id,
            "registry_url": registry_url,
            "threads": threads,
            "crash_at_step": crash_at_step,
            "crash_marker": str(job_dir / "crash_injected"),
            "tracking_wait_s": tracking_wait_s,
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.workers, use_gpu=False, resources_per_worker={"CPU": cpus}
        ),
        run_config=ray.train.RunConfig(
            name=job_id,
            storage_path=str(storage_dir),
            failure_config=ray.train.FailureConfig(max_failures=config.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
        ),
    )
    try:
        fit = trainer.fit()
        if fit.error is not None:
            raise fit.error
    except BaseException as exc:
        error = _failure_text(exc, tracking_uri)
        cancelled = _was_cancelled(registry_url, job_id)
        if not cancelled:
            _registry_update(registry_url, job_id, status="failed", error=error[:10_000])
        try:
            mlflow_client = client(tracking_uri)
            if not cancelled:
                mlflow_client.set_tag(run_id, "counterpoint.error", error[:5000])
            mlflow_client.set_terminated(run_id, "KILLED" if cancelled else "FAILED")
        except Exception:  # noqa: BLE001
            log.warning("could not mark MLflow run %s failed", run_id)
        _write_state(job_dir, status="failed", error=error)
        raise

    result: dict[str, Any] = {"job_id": job_id, "mlflow_run_id": run_id, "status": "succeeded"}
    result.update(fit.metrics or {})
    client(tracking_uri).set_terminated(run_id, "FINISHED")
    metrics = {  # the final metrics and the model URIs, for the gateway and the UI
        k: v for k, v in result.items() if k not in ("job_id", "status", "mlflow_run_id")
    }
    _registry_update(registry_url, job_id, status="succeeded", metrics=metrics, error=None)
    _write_state(job_dir, status="succeeded", error=None, result=result)
    return result


# --- the entry point -------------------------------------------------------------------------------


def init_ray(num_cpus: int | None = None) -> None:
    """Join the cluster named by ``RAY_ADDRESS`` (set by the Ray job runtime) or settings; else start one."""
    import ray

    if ray.is_initialized():
        return
    from counterpoint.settings import get_settings

    settings = get_settings()
    address = os.environ.get("RAY_ADDRESS") or settings.ray_address
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus or settings.ray_num_cpus, include_dashboard=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m counterpoint.workers.train",
        description="Run or resume a Counterpoint fine-tuning job on Ray Train, tracked in MLflow.",
    )
    parser.add_argument("--config", required=True, type=Path, help="training config (YAML or JSON)")
    parser.add_argument("--job-id", required=True, help="job id; the same id resumes from its checkpoints")
    parser.add_argument("--storage", required=True, type=Path, help="directory for checkpoints (per job id)")
    parser.add_argument("--tracking-uri", required=True, help="MLflow tracking URI")
    parser.add_argument("--registry-url", default=None, help="SQLAlchemy URL of the registry database")
    parser.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs of a local Ray started when no cluster is given"
    )
    parser.add_argument(
        "--cpus-per-worker",
        type=float,
        default=None,
        help="CPUs per worker (default: the free CPUs shared evenly)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config(args.config, check_data=False)
        config = resolve_paths(config, config_dir=args.config.resolve().parent)
        config = parse_config(config.model_dump(mode="json"), check_data=True)
    except InvalidInput as exc:
        print(json.dumps({"status": "failed", "error": exc.message}), file=sys.stderr)
        return 2
    init_ray(args.num_cpus)
    try:
        result = run_training(
            config,
            job_id=args.job_id,
            storage_dir=args.storage,
            tracking_uri=args.tracking_uri,
            registry_url=args.registry_url,
            cpus_per_worker=args.cpus_per_worker,
        )
    except Exception as exc:  # noqa: BLE001 - reported as JSON, exit code 1
        print(json.dumps({"status": "failed", "error": f"{type(exc).__name__}: {exc}"}), file=sys.stderr)
        return 1
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy's: Ray pickles train_loop_per_worker by
    # module name, and workers can import counterpoint.workers.train but not the driver's __main__.
    from counterpoint.workers.train import main as _main

    sys.exit(_main())
