"""Two-stage SciFact evaluation in one run: a bi-encoder's top-k, reranked by a cross-encoder, and fused.

Prints nDCG@10 / Recall@100 / MRR@10 for the first stage alone, the cross-encoder's order, and
`counterpoint.fusion` at the given first-stage weights, all on the same candidates (the same
`RerankTask` a reranker job logs as ``eval/*``). Pick the fusion weight on a dev split (a reranker
job trained without it logs ``eval/fused_w*`` there); then score test once with that weight.

    .venv/bin/python bench/eval_reranker.py --reranker DIR --retriever DIR --fusion 0.5
    .venv/bin/python bench/eval_reranker.py --reranker models:/scifact-reranker@champion \\
        --retriever models:/scifact-minilm@champion --tracking-uri http://127.0.0.1:5000 --mode hybrid

Cost on 2 CPU cores: ~5 min to embed the corpus, then the cross-encoder reads top_k x 300 pairs
(~10 min for top 100 at 192 tokens).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reranker", required=True, help="cross-encoder: directory or models:/NAME@ALIAS")
    parser.add_argument("--retriever", default="all-MiniLM-L6-v2", help="first-stage bi-encoder")
    parser.add_argument(
        "--mode",
        choices=("dense", "lexical", "hybrid"),
        default="dense",
        help="first stage: exact dense search, BM25, or hybrid (DBSF) in the platform's store",
    )
    parser.add_argument("--beir", default=None, help="BEIR directory (default: the shipped SciFact)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--top-k", type=int, default=100, help="candidates reranked per query")
    parser.add_argument("--max-length", type=int, default=192, help="tokens per (query, document) pair")
    parser.add_argument("--fusion", type=float, nargs="*", default=[], help="first-stage weights to score")
    parser.add_argument("--tracking-uri", default=None, help="MLflow, for models:/ references")
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics here")
    return parser.parse_args(argv)


def _local(ref: str, tracking_uri: str | None, cache: Path, option: str) -> str:
    from counterpoint.errors import InvalidInput
    from counterpoint.infra.tracking import local_model

    try:
        return local_model(ref, tracking_uri, cache, where=option)
    except InvalidInput as exc:
        sys.exit(f"{exc} (pass --tracking-uri for an MLflow model URI)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from sentence_transformers import CrossEncoder

    from counterpoint.datasets import default_scifact_dir
    from counterpoint.workers.cross_encoder import CrossEncoderModel, RerankTask

    cache = Path(tempfile.mkdtemp(prefix="eval-reranker-"))
    reranker = _local(args.reranker, args.tracking_uri, cache, "--reranker")
    retriever = _local(args.retriever, args.tracking_uri, cache, "--retriever")
    started = time.perf_counter()
    task = RerankTask(
        args.beir or default_scifact_dir(), args.split, retriever=retriever, top_k=args.top_k,
        fusion_weights=args.fusion, mode=args.mode,
    )  # fmt: skip
    print(
        f"first stage ({args.mode}): {len(task.first_stage)} queries x top {args.top_k} in {time.perf_counter() - started:.0f} s"
    )
    model = CrossEncoderModel(CrossEncoder(reranker, device="cpu", max_length=args.max_length), "listwise")
    started = time.perf_counter()
    metrics = task(model)
    print(f"reranked in {time.perf_counter() - started:.0f} s\n")
    rows = [("first stage", "first_stage"), ("cross-encoder", "rerank")]
    rows += [(f"fused, first-stage weight {w:g}", f"fused_w{w:g}") for w in args.fusion]
    print(f"{args.split:<34}{'nDCG@10':>9}{'R@100':>9}{'MRR@10':>9}")
    for label, prefix in rows:
        m = {k: metrics[f"{prefix}_{k}"] for k in ("ndcg_at_10", "recall_at_100", "mrr_at_10")}
        print(f"{label:<34}{m['ndcg_at_10']:>9.2f}{m['recall_at_100']:>9.2f}{m['mrr_at_10']:>9.2f}")
    if args.json:
        args.json.write_text(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
