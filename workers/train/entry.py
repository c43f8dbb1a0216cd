"""The command line of a training job: ``python -m counterpoint.workers.train`` (see ``__main__``).

The gateway submits it as a Ray job's entry point. Prints the result as JSON on success (exit 0),
``{"status": "failed", "error": ...}`` on stderr otherwise (2: a bad config, 1: the job failed).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from counterpoint.errors import InvalidInput
from counterpoint.workers.config import load_config, parse_config
from counterpoint.workers.train.cluster import init_ray
from counterpoint.workers.train.driver import run_training
from counterpoint.workers.train.resolution import resolve_paths


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
