"""The Python SDK: a typed client of the gateway's HTTP API, one method per route.

    from counterpoint.client import Client
    cp = Client()                                  # COUNTERPOINT_API_URL or http://127.0.0.1:8000
    cp.create_collection("papers", payload_indexes={"year": "integer"})
    cp.ingest("papers", [{"id": "1", "text": "Contrastive learning ...", "metadata": {"year": 2020}}])
    cp.search("papers", "what is contrastive learning?", top_k=5).hits
    cp.upload_vectors("papers", "vectors.npy", payloads="ids.jsonl", resume=True)  # no embedding
    cp.chat("Tell me about lighthouses.", decoding="contrastive_search", max_tokens=64).text
    for delta in cp.stream_complete("Once upon a time", max_tokens=32): print(delta, end="")

Errors come back as the same `counterpoint.errors` classes the gateway raised.

Layout: `transport.py` (the HTTP layer), one module of methods per resource (`models`,
`collections`, `ingest`, `vectors`, `search`, `jobs`, `backups`, `generation`; `streaming.py` reads
server-sent events),
`documents.py` (JSONL documents, batches), `vector_files.py` + `parquet_vectors.py` (files of
precomputed vectors: JSONL, .npy, Parquet) and `sdk.py`, where `Client` joins them. This package
imports only the counterpoint base (errors, settings, schemas, jsonl); the CLI, the UI, the demo
and the benchmarks import it.
"""

from __future__ import annotations

from counterpoint.client.documents import read_jsonl, with_id
from counterpoint.client.generation import Messages
from counterpoint.client.sdk import Client
from counterpoint.client.streaming import GenerationStream
from counterpoint.client.transport import BACKUP_TIMEOUT, Progress

__all__ = ["BACKUP_TIMEOUT", "Client", "GenerationStream", "Messages", "Progress", "read_jsonl", "with_id"]
