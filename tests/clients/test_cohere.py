"""The official `cohere` client (v1 and v2) reranking through a real stack's cross-encoder, and
text-embeddings-inference's ``/rerank`` body, each parameter honoured or refused by name."""

from __future__ import annotations

import cohere
import httpx
import pytest

from tests.clients.conftest import RERANKER
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

DOCS = [
    "A lighthouse keeper tends the lamp and the lens.",
    "Sourdough uses wild yeast and lactic bacteria.",
    "The lamp of the lighthouse turns all night.",
]
QUERY = "who tends the lighthouse lamp?"


def test_cohere_v1_and_v2_rerank_like_the_sdk(stack: Stack) -> None:
    ours = stack.client().rerank(QUERY, DOCS)  # the SDK's ranking is the reference
    order = [r.index for r in ours.results]
    scores = [r.relevance_score for r in ours.results]
    v1 = cohere.Client(api_key=stack.api_key, base_url=stack.url)
    got = v1.rerank(model=RERANKER, query=QUERY, documents=DOCS, top_n=2, return_documents=True)
    assert [r.index for r in got.results] == order[:2]
    assert [r.relevance_score for r in got.results] == pytest.approx(scores[:2])
    assert got.results[0].document.text == DOCS[got.results[0].index]
    with pytest.raises(cohere.UnprocessableEntityError, match="max_chunks_per_doc"):
        v1.rerank(model=RERANKER, query=QUERY, documents=DOCS, max_chunks_per_doc=2)
    v2 = cohere.ClientV2(api_key=stack.api_key, base_url=stack.url)
    again = v2.rerank(model=RERANKER, query=QUERY, documents=DOCS)
    assert [r.index for r in again.results] == order
    assert [r.relevance_score for r in again.results] == pytest.approx(scores)
    with pytest.raises(cohere.NotFoundError, match="nope"):
        v2.rerank(model="nope", query=QUERY, documents=DOCS)
    with pytest.raises(cohere.UnauthorizedError):
        cohere.ClientV2(api_key="cp-wrong", base_url=stack.url).rerank(
            model=RERANKER, query=QUERY, documents=DOCS
        )


def test_tei_rerank_body(stack: Stack) -> None:
    ours = stack.client().rerank(QUERY, DOCS)
    reply = httpx.post(
        f"{stack.url}/rerank", headers=stack.headers,
        json={"query": QUERY, "texts": DOCS, "return_text": True, "truncate": True},
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert [(r["index"], r["text"]) for r in reply.json()] == [(r.index, DOCS[r.index]) for r in ours.results]
    raw = httpx.post(
        f"{stack.url}/rerank", headers=stack.headers, json={"query": QUERY, "texts": DOCS, "raw_scores": True}
    )
    assert raw.status_code == 422 and "raw_scores" in raw.json()["error"]["message"]
