"""BM25 sparse vectors, made by the embedded engine's own BM25 model (``qdrant_edge.Bm25``).

One model serves both backends (a Qdrant server stores the same sparse vectors), ingest and queries,
so a document and a query are always tokenised alike: the engine's English word tokenizer, lower
case, English stop words and the Snowball stemmer. Documents get BM25 term-frequency weights with
the collection's ``k``, ``b`` and ``avg_len``; queries weigh each distinct term 1. The engines apply
IDF at search time (the sparse vector's IDF modifier), from the points they hold.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import qdrant_edge as qe

from counterpoint.infra.vectors.base import Bm25Settings

LEXICAL_VECTOR = "bm25"
"""The sparse vector's name in both engines (the dense vector is the unnamed default one)."""

LANGUAGE = "english"


@functools.lru_cache(maxsize=32)
def bm25_model(settings: Bm25Settings) -> qe.Bm25:
    """The engine's BM25 model for a collection's settings (built once per distinct settings)."""
    return qe.Bm25(qe.Bm25Config(k=settings.k, b=settings.b, avg_len=settings.avg_len, language=LANGUAGE))


def lexical_text(payload: Mapping[str, Any]) -> str | None:
    """What BM25 indexes of a stored document: its title and text (None when it has neither)."""
    parts = [v for v in (payload.get("title"), payload.get("text")) if isinstance(v, str) and v]
    return " ".join(parts) if parts else None


def document_vector(settings: Bm25Settings, payload: Mapping[str, Any]) -> qe.SparseVector | None:
    """A document's BM25 vector from its payload's title and text; None if it has no text."""
    text = lexical_text(payload)
    return None if text is None else bm25_model(settings).embed_document(text)


def query_vector(settings: Bm25Settings, text: str) -> qe.SparseVector:
    """A query's sparse vector: weight 1 for each distinct term (empty when every word is a stop word)."""
    return bm25_model(settings).embed_query(text)
