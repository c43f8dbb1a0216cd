"""/v1/embeddings over HTTP (8 concurrent clients x 32 SciFact abstracts) vs in-process encode.

Reference: sentence-transformers' ``SentenceTransformer.encode`` on the same texts, same model,
same max length, in this same run. Target: HTTP sentences/s >= 0.8x the reference.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
from _stack import auth_headers, gateway  # noqa: E402

from counterpoint.datasets import default_scifact_dir, iter_corpus, passage_text  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="gateway of a running stack (default: start a private one)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32, help="texts per request")
    parser.add_argument("--rounds", type=int, default=2, help="requests per client")
    parser.add_argument("--max-seq-length", type=int, default=256)
    args = parser.parse_args()

    n = args.clients * args.batch * args.rounds
    docs = [
        passage_text(d["title"], d["text"])
        for _, d in zip(range(n), iter_corpus(default_scifact_dir()), strict=False)
    ]
    requests = [docs[i : i + args.batch] for i in range(0, n, args.batch)]

    from sentence_transformers import SentenceTransformer

    from counterpoint.models.paths import packaged_minilm_path

    model = SentenceTransformer(str(packaged_minilm_path()), device="cpu")
    model.max_seq_length = args.max_seq_length
    model.encode(docs[:8])
    started = time.perf_counter()
    model.encode(docs, batch_size=64, normalize_embeddings=True)
    in_process = n / (time.perf_counter() - started)

    os.environ["COUNTERPOINT_MAX_SEQ_LENGTH"] = str(args.max_seq_length)
    with gateway(args.url) as url, httpx.Client(base_url=url, timeout=300, headers=auth_headers(url)) as http:
        http.post("/v1/embeddings", json={"input": docs[:8]}).raise_for_status()

        def send(texts: list[str]) -> int:
            reply = http.post("/v1/embeddings", json={"input": texts})
            reply.raise_for_status()
            return len(reply.json()["data"])

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            done = sum(pool.map(send, requests))
        over_http = done / (time.perf_counter() - started)

    print(
        f"texts: {n} SciFact abstracts, max_seq_length {args.max_seq_length}, {args.clients} clients x {args.batch}"
    )
    print(f"in-process SentenceTransformer.encode : {in_process:8.1f} sentences/s")
    print(f"HTTP /v1/embeddings (Ray Serve)       : {over_http:8.1f} sentences/s")
    print(f"ratio HTTP / in-process               : {over_http / in_process:8.2f}  (target >= 0.80)")


if __name__ == "__main__":
    main()
