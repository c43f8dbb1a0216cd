"""Inference backends side by side (#21): torch fp32 vs ONNX Runtime and OpenVINO, fp32 and int8.

Everything runs through the classes the replicas serve (``TextEmbedder`` / ``TextReranker`` with
``backend=``; exports from :mod:`counterpoint.models.export`), in one run, on the same threads:

* bi-encoder (all-MiniLM-L6-v2, or ``--model``): sentences/s on short texts (STS-B test sentences)
  and long ones (SciFact abstracts, 256 tokens), batch 32, best of 3 passes, tokenisation and pooling
  included; quality: STS-B test Spearman and SciFact test nDCG@10 (exact search over the corpus, what
  a full-scan collection answers);
* cross-encoder (``--reranker DIR`` or ``models:/NAME@ALIAS`` with ``--tracking-uri``; skipped
  without): (query, abstract) pairs/s at 256 tokens, batch 32; quality: SciFact test nDCG@10 of
  reranking the base bi-encoder's top 10.

Reference: torch fp32, as the replicas ran until now. Targets (#21) on 2 cores: int8 >= 1.8x torch
fp32 throughput with <= 0.5 point loss on both quality measures; an fp32 export >= 1.2x; rerank int8
>= 1.8x with <= 0.5 nDCG@10 loss.

    .venv/bin/python bench/bench_backends.py                       # ~15 min on 2 cores
    .venv/bin/python bench/bench_backends.py --reranker models:/scifact-reranker@champion \\
        --tracking-uri http://127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from _machine import cpu_name  # noqa: E402

from counterpoint.datasets import (  # noqa: E402
    default_scifact_dir,
    default_stsb_dir,
    iter_corpus,
    load_sts,
    passage_text,
)

BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-int8")


def best_rate(work: Callable[[], object], items: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return items / best


def bi_encoder_rows(
    model: str, work: Path, threads: int, short: list[str], long: list[str], max_docs: int | None
) -> list[dict]:
    from counterpoint.models.embedder import TextEmbedder
    from counterpoint.workers.evaluate import RetrievalTask, sts_spearman

    test = [(a, b, float(s)) for a, b, s in load_sts(default_stsb_dir() / "test.tsv.gz")]
    scifact = RetrievalTask(default_scifact_dir(), "test", max_docs)
    rows = []
    for backend in BACKENDS:
        started = time.perf_counter()
        embedder = TextEmbedder(
            model, max_seq_length=256, batch_size=32, backend=backend, export_dir=work / "bi" / backend,
            torch_threads=threads,
        )  # fmt: skip
        ready = time.perf_counter() - started

        def encode(texts: Sequence[str], e: TextEmbedder = embedder) -> object:
            return e.embed(list(texts)).vectors

        rows.append(
            {
                "backend": backend,
                "export_s": ready,
                "short": best_rate(lambda: encode(short), len(short)),
                "long": best_rate(lambda: encode(long), len(long)),
                "sts": sts_spearman(encode, test),
                "ndcg": scifact(encode)["ndcg_at_10"],
            }
        )
        print(f"  {backend}: done", flush=True)
    return rows


def cross_encoder_rows(
    reranker: str, work: Path, threads: int, max_docs: int | None, timed_pairs: int
) -> list[dict]:
    from counterpoint.evaluation import evaluate_run
    from counterpoint.models.reranker import TextReranker
    from counterpoint.workers.cross_encoder import RerankTask

    task = RerankTask(default_scifact_dir(), "test", top_k=10, max_docs=max_docs)
    pairs = [(task.queries[q], task.corpus[d]) for q, hits in task.first_stage.items() for d in hits]
    timed = [(q, [d]) for q, d in pairs[:timed_pairs]]
    rows = []
    for backend in BACKENDS:
        model = TextReranker(
            reranker, max_length=256, batch_size=32, backend=backend, export_dir=work / "cross" / backend,
            torch_threads=threads,
        )  # fmt: skip
        rate = best_rate(lambda m=model: m.score_many(timed), len(timed))
        run = {}
        for qid, hits in task.first_stage.items():
            ids = list(hits)
            scores = model.score(task.queries[qid], [task.corpus[d] for d in ids]).scores
            run[qid] = dict(zip(ids, scores.tolist(), strict=True))
        rows.append({"backend": backend, "pairs": rate, "ndcg": evaluate_run(run, task.qrels).ndcg_at_10})
        print(f"  {backend}: done", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="bi-encoder: packaged name or directory")
    parser.add_argument("--reranker", default=None, help="cross-encoder: directory or models:/NAME@ALIAS")
    parser.add_argument("--tracking-uri", default=None, help="MLflow, for a models:/ reranker")
    parser.add_argument("--short", type=int, default=512, help="STS-B sentences timed")
    parser.add_argument("--long", type=int, default=256, help="SciFact abstracts timed")
    parser.add_argument("--pairs", type=int, default=640, help="(query, abstract) pairs timed")
    parser.add_argument(
        "--max-docs", type=int, default=None, help="SciFact corpus sample (default: all 5,183)"
    )
    args = parser.parse_args()

    test = load_sts(default_stsb_dir() / "test.tsv.gz")
    short = list(dict.fromkeys(s for pair in test for s in (pair[0], pair[1])))[: args.short]
    corpus = iter_corpus(default_scifact_dir())
    long = [passage_text(d["title"], d["text"]) for _, d in zip(range(args.long), corpus, strict=False)]
    print(f"{date.today().isoformat()}  {cpu_name()}  threads={args.threads}  batch 32", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        work = Path(tmp)
        print(f"bi-encoder {args.model}", flush=True)
        bi = bi_encoder_rows(args.model, work, args.threads, short, long, args.max_docs)
        cross = []
        if args.reranker:
            from counterpoint.infra.tracking import local_model

            reranker = local_model(args.reranker, args.tracking_uri, work / "models", where="--reranker")
            print(f"cross-encoder {args.reranker}", flush=True)
            cross = cross_encoder_rows(reranker, work, args.threads, args.max_docs, args.pairs)

    base = bi[0]
    print(
        f"\n{'bi-encoder':14s} {'short/s':>9s} {'x':>6s} {'long/s':>8s} {'x':>6s} "
        f"{'STS-B test':>10s} {'delta':>6s} {'SciFact':>8s} {'delta':>6s} {'export s':>8s}"
    )
    for r in bi:
        print(
            f"{r['backend']:14s} {r['short']:9.1f} {r['short'] / base['short']:5.2f}x {r['long']:8.1f} "
            f"{r['long'] / base['long']:5.2f}x {r['sts']:10.2f} {r['sts'] - base['sts']:+6.2f} "
            f"{r['ndcg']:8.2f} {r['ndcg'] - base['ndcg']:+6.2f} {r['export_s']:8.1f}"
        )
    if cross:
        top = cross[0]
        print(
            f"\n{'cross-encoder':14s} {'pairs/s':>9s} {'x':>6s} {'nDCG@10':>8s} {'delta':>6s}  (rerank top 10)"
        )
        for r in cross:
            print(
                f"{r['backend']:14s} {r['pairs']:9.1f} {r['pairs'] / top['pairs']:5.2f}x "
                f"{r['ndcg']:8.2f} {r['ndcg'] - top['ndcg']:+6.2f}"
            )
    print(
        "\ntargets (#21): int8 >= 1.8x torch fp32 with <= 0.5 point loss (STS-B, SciFact); "
        "an fp32 export >= 1.2x; rerank int8 >= 1.8x with <= 0.5 nDCG@10 loss"
    )


if __name__ == "__main__":
    main()
