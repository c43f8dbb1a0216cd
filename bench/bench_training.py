"""Training throughput (examples/s): our Ray Train loop vs sentence-transformers' trainer, MNRL, 1 worker.

Reference: ``SentenceTransformerTrainer`` with ``MultipleNegativesRankingLoss`` (scale 20, cosine), in
this same run, on the same model (all-MiniLM-L6-v2), the same data (SciFact train (query, abstract)
pairs), batch size, max length, learning rate, linear warmup/decay, weight decay, gradient clipping
(1.0) and number of steps. Target: ours / reference >= 1.0.

What is timed, for both: one training step (building and tokenising the batch, forward, backward,
clipping, optimizer and scheduler steps), as the **median** over the steps, so that a step slowed by
another process on a shared machine does not decide the result; examples/s = batch / median step.
Ours: the worker's own ``train/step_seconds`` over one report window covering every step
(``report_every`` = steps, so no Ray report falls inside it). Reference: a ``TrainerCallback``
timing consecutive ``on_step_end`` calls (the interval includes fetching and collating the batch).
The reference runs before and after ours (bracketing: its two results are averaged and both shown),
so a change of machine load during the run shows up instead of silently skewing the ratio.
Start-up (Ray, the worker process, model loading, MLflow) is printed separately as wall time. Both
use the same CPU threads (our one worker holds every CPU).

A last line times our training step in this process without Ray (the same model build, optimizer
and ``TrainStep`` the worker runs), so the engine and Ray's share are seen apart: on 2 cores the
idle Ray processes (raylet, GCS, Ray Train's controller actors) take ~10 % of the CPU while a job
trains, and a preempted OpenMP thread stalls its partner.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from counterpoint.datasets import default_scifact_dir  # noqa: E402
from counterpoint.workers.config import TrainConfig, parse_config  # noqa: E402
from counterpoint.workers.data import DataSource, Example, load_examples  # noqa: E402

SEED = 42
LR = 2e-5
WARMUP_RATIO = 0.1
WEIGHT_DECAY = 0.01


def reference_throughput(
    pairs: list[tuple[str, str]], args: argparse.Namespace, out: Path
) -> tuple[float, float]:
    """(examples/s from the median step, wall seconds) of SentenceTransformerTrainer + MNRL."""
    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import TrainerCallback

    from counterpoint.models.paths import packaged_minilm_path

    class StepClock(TrainerCallback):
        """Step durations: first ``on_step_begin`` to first ``on_step_end``, then end to end."""

        def __init__(self) -> None:
            self.marks: list[float] = []

        def on_step_begin(self, *_a: object, **_k: object) -> None:
            if not self.marks:
                self.marks.append(time.perf_counter())

        def on_step_end(self, *_a: object, **_k: object) -> None:
            self.marks.append(time.perf_counter())

    started = time.perf_counter()
    torch.manual_seed(SEED)
    model = SentenceTransformer(str(packaged_minilm_path()), device="cpu")
    model.max_seq_length = args.max_seq_length
    dataset = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    clock = StepClock()
    trainer = SentenceTransformerTrainer(
        model=model,
        args=SentenceTransformerTrainingArguments(
            output_dir=str(out / "st"),
            per_device_train_batch_size=args.batch_size,
            max_steps=args.steps,
            learning_rate=LR,
            warmup_steps=int(WARMUP_RATIO * args.steps),
            weight_decay=WEIGHT_DECAY,
            max_grad_norm=1.0,
            logging_steps=args.steps,
            save_strategy="no",
            report_to="none",
            dataloader_drop_last=True,
            disable_tqdm=True,
            seed=SEED,
            use_cpu=True,
        ),
        train_dataset=dataset,
        loss=MultipleNegativesRankingLoss(model, scale=20.0),
        callbacks=[clock],
    )
    trainer.train()
    wall = time.perf_counter() - started
    steps = [b - a for a, b in zip(clock.marks, clock.marks[1:], strict=False)]
    return args.batch_size / statistics.median(steps), wall


def our_config(args: argparse.Namespace) -> TrainConfig:
    return parse_config(
        {
            "name": "bench-training",
            "model": "all-MiniLM-L6-v2",
            "loss": {"name": "mnrl", "scale": 20.0},
            "data": {"path": str(default_scifact_dir()), "format": "beir", "split": "train"},
            "eval": {"every_steps": 10**6, "uniformity_sample": 16},
            "batch_size": args.batch_size,
            "max_steps": args.steps,
            "max_seq_length": args.max_seq_length,
            "lr": LR,
            "warmup_ratio": WARMUP_RATIO,
            "weight_decay": WEIGHT_DECAY,
            "report_every": args.steps,
            "checkpoint_every": args.steps,
            "seed": SEED,
            "experiment": "bench-training",
        }
    )


def engine_throughput(examples: list[Example], args: argparse.Namespace) -> float:
    """Examples/s (median step) of our training step in this process, without Ray: the step the
    Ray Train worker runs (same model build, optimizer and `TrainStep`), on the same batches."""
    import torch

    from counterpoint.workers.model import Batch
    from counterpoint.workers.train import TrainStep, build_model, build_optimizer

    config = our_config(args)
    torch.manual_seed(SEED)
    model = build_model(config, 1, "cpu")
    model.train()
    train_step = TrainStep(model, *build_optimizer(model, config, args.steps))
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(SEED)).tolist()
    seconds = []
    for step in range(args.steps):
        rows = [examples[i] for i in order[step * args.batch_size : (step + 1) * args.batch_size]]
        started = time.perf_counter()
        train_step(Batch.from_examples("pairs", rows))
        seconds.append(time.perf_counter() - started)
    return args.batch_size / statistics.median(seconds)


def our_throughput(args: argparse.Namespace, out: Path) -> tuple[float, float, float]:
    """(examples/s from the median step, wall seconds, final loss) of our loop through Ray Train."""
    import ray

    from counterpoint.workers.train import run_training

    config = our_config(args)
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    try:
        started = time.perf_counter()
        result = run_training(
            config,
            job_id="bench",
            storage_dir=out / "ray",
            tracking_uri=f"sqlite:///{out / 'mlflow.db'}",
            cpus_per_worker=args.cpus,
        )
        wall = time.perf_counter() - started
    finally:
        ray.shutdown()
    return args.batch_size / float(result["train/step_seconds"]), wall, float(result["train/loss"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument(
        "--cpus", type=int, default=os.cpu_count() or 1, help="CPUs (and torch threads) for both"
    )
    args = parser.parse_args()

    _, examples = load_examples(DataSource(path=str(default_scifact_dir()), format="beir", split="train"))
    pairs = [(e.texts[0], e.texts[1]) for e in examples]
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        out = Path(tmp)
        import torch

        torch.set_num_threads(args.cpus)
        before, reference_wall = reference_throughput(pairs, args, out)
        engine = engine_throughput(examples, args)
        ours, ours_wall, loss = our_throughput(args, out)
        after, _ = reference_throughput(pairs, args, out)
    reference = (before + after) / 2

    print(
        f"MNRL, all-MiniLM-L6-v2, SciFact train pairs ({len(pairs)}), batch {args.batch_size}, "
        f"max length {args.max_seq_length}, {args.steps} steps, {args.cpus} CPUs, 1 worker"
    )
    print(
        f"sentence-transformers SentenceTransformerTrainer : {reference:8.2f} examples/s "
        f"(before {before:.2f}, after {after:.2f}; wall {reference_wall:.1f} s)"
    )
    print(
        f"Counterpoint Ray Train loop                     : {ours:8.2f} examples/s "
        f"(wall {ours_wall:.1f} s incl. Ray start-up; final loss {loss:.3f})"
    )
    print(f"ratio ours / sentence-transformers              : {ours / reference:8.2f}  (target >= 1.00)")
    print(
        f"our step in this process, no Ray (engine only)  : {engine:8.2f} examples/s, "
        f"{engine / reference:.2f}x sentence-transformers; Ray's share of a step: {1 - ours / engine:.0%}"
    )


if __name__ == "__main__":
    main()
