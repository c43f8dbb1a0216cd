"""/v1/embeddings over HTTP (8 concurrent clients x 32 texts) vs in-process encode.

Texts: SciFact abstracts (``--texts scifact``, the default: long, the cost is per token) or STS-B
sentences (``--texts stsb``: short, the cost is per request and per batch). Reference:
sentence-transformers' ``SentenceTransformer.encode`` on the same texts, same model, same max
length, batches of 64, in this same run (what a user runs without us). Targets: HTTP sentences/s
>= 0.8x the reference with abstracts, >= 0.9x with short texts (#18).

The stack serves the model on its configured backend (``embed_backend``, default ``auto``: an
exported graph, see the README's "Inference backends"), so a second reference is printed too: the
same model on the same backend in this process (`TextEmbedder.embed` of all texts at once), which
isolates the cost of the serving path from the runtime's speed. ``--backend`` picks the private
stack's backend. ``--encoding`` runs the HTTP phase with the answer's vectors as JSON floats (the
API's default) and/or as base64 float32 (``encoding_format: base64``, what the OpenAI SDK asks
for by default, decoded here with numpy as it does), one after the other on the same stack.

    .venv/bin/python bench/bench_embeddings.py --texts stsb [--url http://127.0.0.1:8000] [--backend torch]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
from _stack import auth_headers, gateway, served_backend, served_runtime_rate  # noqa: E402

from counterpoint.datasets import (  # noqa: E402
    default_scifact_dir,
    default_stsb_dir,
    iter_corpus,
    load_sts,
    passage_text,
)
from counterpoint.schemas.embeddings import decode_embedding  # noqa: E402

TARGETS = {"scifact": 0.8, "stsb": 0.9}


def load_texts(kind: str, n: int) -> list[str]:
    """``n`` SciFact abstracts (title + text) or ``n`` distinct STS-B sentences (train split)."""
    if kind == "scifact":
        corpus = iter_corpus(default_scifact_dir())
        return [passage_text(d["title"], d["text"]) for _, d in zip(range(n), corpus, strict=False)]
    pairs = load_sts(default_stsb_dir() / "train.tsv.gz")
    sentences = list(dict.fromkeys(s for pair in pairs for s in (pair[0], pair[1])))
    return sentences[:n]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="gateway of a running stack (default: start a private one)")
    parser.add_argument("--texts", choices=sorted(TARGETS), default="scifact", help="long or short texts")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32, help="texts per request")
    parser.add_argument(
        "--rounds", type=int, help="requests per client (default 2 with abstracts, 16 with short texts)"
    )
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--backend", default="auto", help="the private stack's embed_backend")
    parser.add_argument(
        "--encoding", default="float,base64", help="answer formats measured, comma-separated: float, base64"
    )
    args = parser.parse_args()

    rounds = args.rounds or (2 if args.texts == "scifact" else 16)
    n = args.clients * args.batch * rounds
    docs = load_texts(args.texts, n)
    n = len(docs)
    requests = [docs[i : i + args.batch] for i in range(0, n, args.batch)]

    from sentence_transformers import SentenceTransformer

    from counterpoint.models.paths import packaged_minilm_path

    model = SentenceTransformer(str(packaged_minilm_path()), device="cpu")
    model.max_seq_length = args.max_seq_length
    model.encode(docs[:8])

    def encode_rate() -> float:
        started = time.perf_counter()
        model.encode(docs, batch_size=64, normalize_embeddings=True)
        return n / (time.perf_counter() - started)

    before = encode_rate()

    os.environ["COUNTERPOINT_MAX_SEQ_LENGTH"] = str(args.max_seq_length)
    os.environ["COUNTERPOINT_EMBED_BACKEND"] = args.backend
    with gateway(args.url) as url, httpx.Client(base_url=url, timeout=300, headers=auth_headers(url)) as http:
        http.post("/v1/embeddings", json={"input": docs[:8]}).raise_for_status()

        def send(texts: list[str], encoding: str) -> int:
            reply = http.post("/v1/embeddings", json={"input": texts, "encoding_format": encoding})
            reply.raise_for_status()
            data = reply.json()["data"]
            if encoding == "base64":
                [decode_embedding(item["embedding"]) for item in data]
            return len(data)

        over_http: list[tuple[str, float]] = []
        for encoding in args.encoding.split(","):
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                done = sum(pool.map(send, requests, [encoding] * len(requests)))
            over_http.append((encoding, done / (time.perf_counter() - started)))
        backend = served_backend(url)
    after = encode_rate()  # the reference brackets the HTTP run: a shared machine's load drifts
    in_process = (before + after) / 2
    same_rate = served_runtime_rate(backend, docs, args.max_seq_length)

    what = "SciFact abstracts" if args.texts == "scifact" else "STS-B sentences"
    print(f"texts: {n} {what}, max_seq_length {args.max_seq_length}, {args.clients} clients x {args.batch}")
    print(
        f"in-process SentenceTransformer.encode : {in_process:8.1f} sentences/s ({before:.1f} before, {after:.1f} after)"
    )
    print(
        f"in-process TextEmbedder, {backend:<13}: {same_rate:8.1f} sentences/s (the served runtime, no serving)"
    )
    target = TARGETS[args.texts]
    for encoding, rate in over_http:
        print(f"HTTP /v1/embeddings, {backend}, {encoding:<7}: {rate:8.1f} sentences/s")
        print(f"  ratio HTTP / in-process encode       : {rate / in_process:8.2f}  (target >= {target:.2f})")
        print(f"  ratio HTTP / same runtime in-process : {rate / same_rate:8.2f}  (the serving path's cost)")


if __name__ == "__main__":
    main()
