"""STS-B Spearman (x100) of a fine-tuned model next to the base model, on the shipped STS-B split.

Reference: the base model, all-MiniLM-L6-v2, encoded the same way in the same run (MTEB reports
82.03 for it on the test split). The issue's target for a CoSENT fine-tune is >= 86 on test.
Tune on train/dev; report test once.

    .venv/bin/python bench/eval_stsb.py --model .counterpoint/models/registry/stsb-minilm-v1-...
    .venv/bin/python bench/eval_stsb.py --model models:/stsb-minilm@champion --tracking-uri http://127.0.0.1:5000
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import json
import sys
import tempfile
from pathlib import Path

TARGET = 86.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Spearman x100 of cos(s1, s2) vs the gold scores on STS-B, fine-tuned model vs base model."
    )
    parser.add_argument("--model", required=True, help="model directory or MLflow model URI (models:/...)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for a models:/ URI")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from sentence_transformers import SentenceTransformer

    from counterpoint.datasets import default_stsb_dir, load_sts
    from counterpoint.errors import InvalidInput
    from counterpoint.infra.tracking import local_model
    from counterpoint.models.paths import packaged_minilm_path
    from counterpoint.workers.evaluate import st_encoder, sts_spearman

    try:
        model_path = local_model(args.model, args.tracking_uri, Path(tempfile.mkdtemp()), where="--model")
    except InvalidInput as exc:
        print(f"{exc} (pass --tracking-uri for an MLflow model URI)", file=sys.stderr)
        return 2
    pairs = [(p.s1, p.s2, p.score) for p in load_sts(default_stsb_dir() / f"{args.split}.tsv")]
    scores = {}
    for label, path in (("base all-MiniLM-L6-v2", packaged_minilm_path()), (args.model, model_path)):
        model = SentenceTransformer(str(path), device="cpu")
        model.eval()
        scores[label] = sts_spearman(st_encoder(model), pairs)
        print(f"{label:<40} STS-B {args.split} Spearman {scores[label]:.2f}", flush=True)
    base, tuned = scores.values()
    print(f"fine-tuned - base: {tuned - base:+.2f} points (ratio {tuned / base:.3f}); target >= {TARGET}")
    if args.json is not None:
        args.json.write_text(json.dumps({"split": args.split, "base": base, "model": tuned}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
