"""Ingest of SciFact abstracts through the gateway (embed + upsert) vs in-process encode alone.

Reference: ``SentenceTransformer.encode`` of the same title+abstract texts in this run.
Target (#18): ingest docs/s >= 0.9x the reference (the vector store and HTTP cost little).
Also printed: the model on the backend the stack serves it with (``embed_backend``, default
``auto``; ``--backend`` for the private stack) encoding the same texts in this process, which
isolates the ingest path's cost from the runtime's speed.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _stack import api_key, gateway, served_backend, served_runtime_rate  # noqa: E402

from counterpoint.client import Client  # noqa: E402
from counterpoint.datasets import default_scifact_dir, iter_corpus, passage_text, to_ingest_document  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="gateway of a running stack (default: start a private one)")
    parser.add_argument("--limit", type=int, default=5183, help="documents to ingest (full corpus: 5183)")
    parser.add_argument("--batch", type=int, default=64, help="documents per ingest request")
    parser.add_argument("--backend", default="auto", help="the private stack's embed_backend")
    args = parser.parse_args()
    os.environ["COUNTERPOINT_EMBED_BACKEND"] = args.backend

    docs = [
        to_ingest_document(d)
        for _, d in zip(range(args.limit), iter_corpus(default_scifact_dir()), strict=False)
    ]
    texts = [passage_text(d["title"], d["text"]) for d in docs]

    from sentence_transformers import SentenceTransformer

    from counterpoint.models.paths import packaged_minilm_path

    model = SentenceTransformer(str(packaged_minilm_path()), device="cpu")
    model.max_seq_length = 256
    model.encode(texts[:8])
    started = time.perf_counter()
    model.encode(texts, batch_size=64, normalize_embeddings=True)
    in_process = len(texts) / (time.perf_counter() - started)

    with gateway(args.url) as url, Client(url, api_key=api_key(url), timeout=600) as client:
        name = f"bench-ingest-{int(time.time())}"
        client.create_collection(name)
        started = time.perf_counter()
        result = client.ingest(name, docs, batch_size=args.batch)
        ingest = result.indexed / (time.perf_counter() - started)
        client.delete_collection(name)
        backend = served_backend(url)
    same_rate = served_runtime_rate(backend, texts, 256)

    print(f"documents: {len(docs)} SciFact abstracts (title + text), max_seq_length 256")
    print(f"in-process encode only     : {in_process:7.1f} docs/s (sentence-transformers, torch)")
    print(f"in-process, {backend:<15}: {same_rate:7.1f} docs/s (the served runtime, TextEmbedder)")
    print(
        f"ingest via gateway (embed on {backend} + upsert into the embedded Qdrant engine): {ingest:7.1f} docs/s"
    )
    print(f"ratio ingest / encode      : {ingest / in_process:7.2f}  (target >= 0.90, #18)")
    print(f"ratio ingest / same runtime: {ingest / same_rate:7.2f}  (the ingest path's cost)")


if __name__ == "__main__":
    main()
