"""`haystack-ai`'s OpenAI components against a real stack: an indexing + retrieval pipeline with
`OpenAIDocumentEmbedder` / `OpenAITextEmbedder`, and `OpenAIChatGenerator` answering whole and streamed."""

from __future__ import annotations

import pytest
from haystack import Document, Pipeline
from haystack.components.embedders import OpenAIDocumentEmbedder, OpenAITextEmbedder
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.dataclasses import ChatMessage, StreamingChunk
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.utils import Secret

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

LM = "SmolLM2-135M-Instruct"
EMBED = "all-MiniLM-L6-v2"


def test_embedders_in_a_retrieval_pipeline(stack: Stack) -> None:
    common = {"api_key": Secret.from_token(stack.api_key), "api_base_url": f"{stack.url}/v1", "model": EMBED}
    store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    docs = [
        Document(content="Bicycles have two wheels and pedals."),
        Document(content="Sourdough rises with wild yeast."),
    ]
    embedded = OpenAIDocumentEmbedder(**common, progress_bar=False).run(documents=docs)["documents"]
    assert all(d.embedding is not None and len(d.embedding) == 384 for d in embedded)
    store.write_documents(embedded)
    pipeline = Pipeline()
    pipeline.add_component("embed", OpenAITextEmbedder(**common))
    pipeline.add_component("retrieve", InMemoryEmbeddingRetriever(document_store=store, top_k=1))
    pipeline.connect("embed.embedding", "retrieve.query_embedding")
    found = pipeline.run({"embed": {"text": "how does bread rise?"}})["retrieve"]["documents"]
    assert found[0].content == "Sourdough rises with wild yeast."
    short = OpenAITextEmbedder(**common, dimensions=64).run(text="bread")["embedding"]
    assert len(short) == 64


def test_chat_generator_whole_and_streamed(stack: Stack) -> None:
    def generator(**extra: object) -> OpenAIChatGenerator:
        return OpenAIChatGenerator(
            api_key=Secret.from_token(stack.api_key), api_base_url=f"{stack.url}/v1", model=LM,
            generation_kwargs={"temperature": 0, "max_tokens": 8}, max_retries=0, **extra,
        )  # fmt: skip

    question = [ChatMessage.from_user("Name a fruit.")]
    whole = generator().run(messages=question)["replies"][0]
    assert whole.text and whole.meta["usage"]["completion_tokens"] <= 8
    chunks: list[StreamingChunk] = []
    streamed = generator(streaming_callback=chunks.append).run(messages=question)["replies"][0]
    assert streamed.text == whole.text and len(chunks) > 1
    assert "".join(c.content for c in chunks) == whole.text
