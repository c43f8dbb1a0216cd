"""The fine-tuning job: a Ray Train ``TorchTrainer`` loop, tracked in MLflow, resumable from checkpoints.

Modules, low to high (each imports only those above it, plus the workers' base modules: config,
data, model, cross_encoder via :mod:`counterpoint.workers.trainable`, losses, mining; and
counterpoint base and infra; never services, ui or the CLI):

* :mod:`.environment` — the process's environment defaults, set before torch loads (imported first);
* :mod:`.plan` — :class:`StepPlan`: which examples each step and worker trains on;
* :mod:`.resolution` — config paths made absolute, ``models:/`` references downloaded and pinned;
* :mod:`.checkpoints` — what a checkpoint holds (state, RNG, pending metrics), restoring one, and
  the one :func:`~.checkpoints.report` to Ray, with or without a checkpoint;
* :mod:`.run_logger` — :class:`RunLogger`, rank 0's MLflow logging, buffered while MLflow is away;
* :mod:`.publish` — the end of a job: wait for MLflow, log and register the model;
* :mod:`.job_state` — the state file next to the checkpoints and the registry row;
* :mod:`.step` — :func:`build_optimizer` and :class:`TrainStep`;
* :mod:`.loop` — :func:`train_loop_per_worker`, what every Ray Train worker runs;
* :mod:`.mining_step`, :mod:`.tracking_run`, :mod:`.cluster`, :mod:`.driver` — the driver:
  :func:`run_training` mines, creates or re-joins the MLflow run, and runs the trainer;
* :mod:`.entry` / ``__main__`` — ``python -m counterpoint.workers.train``, the entry point the
  gateway submits as a Ray job.

Rank 0 logs the curves to MLflow, evaluates, and at the end logs the model in its library's format
and registers it. The driver runs the trainer with ``RunConfig(name=job_id, storage_path=storage_dir)``
and ``FailureConfig(config.max_failures)`` (2 by default: a killed worker restarts the group from the
last checkpoint), and keeps the registry job row current. Calling it again with the same ``job_id``
after the process died continues from the last checkpoint, in the same MLflow run. MLflow going away
mid-job is buffered (:class:`RunLogger`); at the end the job waits for it, then fails saying so.

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

from counterpoint.workers.train import environment  # noqa: F401 - first: before torch loads

# isort: split

from counterpoint.workers.train.checkpoints import (
    CHECKPOINT_RESULT,
    CHECKPOINT_STATE,
    CHECKPOINTS_KEPT,
    PENDING_METRICS,
)
from counterpoint.workers.train.cluster import default_cpus_per_worker, init_ray
from counterpoint.workers.train.driver import run_training
from counterpoint.workers.train.entry import build_parser, main
from counterpoint.workers.train.job_state import JOB_STATE_FILE, read_state, write_state
from counterpoint.workers.train.loop import train_loop_per_worker
from counterpoint.workers.train.mining_step import HARD_NEGATIVES_FILE, mine_hard_negatives
from counterpoint.workers.train.plan import StepPlan
from counterpoint.workers.train.publish import TrackingUnavailable, tracking_reachable
from counterpoint.workers.train.resolution import REPO_ROOT, resolve_paths, resolve_registry_models
from counterpoint.workers.train.run_logger import MAX_METRICS_PER_BATCH, MLFLOW_RETRY_S, RunLogger
from counterpoint.workers.train.step import TrainStep, build_optimizer
from counterpoint.workers.trainable import build_model

__all__ = [
    "CHECKPOINTS_KEPT",
    "CHECKPOINT_RESULT",
    "CHECKPOINT_STATE",
    "HARD_NEGATIVES_FILE",
    "JOB_STATE_FILE",
    "MAX_METRICS_PER_BATCH",
    "MLFLOW_RETRY_S",
    "PENDING_METRICS",
    "REPO_ROOT",
    "RunLogger",
    "StepPlan",
    "TrackingUnavailable",
    "TrainStep",
    "build_model",
    "build_optimizer",
    "build_parser",
    "default_cpus_per_worker",
    "init_ray",
    "main",
    "mine_hard_negatives",
    "read_state",
    "resolve_paths",
    "resolve_registry_models",
    "run_training",
    "tracking_reachable",
    "train_loop_per_worker",
    "write_state",
]
