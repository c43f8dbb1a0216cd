"""`langchain-openai` against a real stack: `OpenAIEmbeddings` for a small retrieval, `ChatOpenAI`
answering whole and streamed, both pointed at the gateway with ``base_url``."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

LM = "SmolLM2-135M-Instruct"
DOCS = ["Bicycles have two wheels and pedals.", "Sourdough bread rises with wild yeast."]


def test_openai_embeddings_retrieve_the_right_document(stack: Stack) -> None:
    # LangChain tokenises with OpenAI's tokenizer and sends token ids unless told not to; our
    # models have their own tokenizers, so token ids are refused by name and users set this.
    embeddings = OpenAIEmbeddings(
        base_url=f"{stack.url}/v1", api_key=stack.api_key, model="all-MiniLM-L6-v2",
        check_embedding_ctx_length=False,
    )  # fmt: skip
    docs = np.asarray(embeddings.embed_documents(DOCS))
    query = np.asarray(embeddings.embed_query("how does bread rise?"))
    assert docs.shape == (2, 384) and int(np.argmax(docs @ query)) == 1
    ours = stack.client().embed(DOCS).data
    np.testing.assert_allclose(docs, [d.embedding for d in ours], atol=1e-5)


def test_chat_openai_whole_and_streamed(stack: Stack) -> None:
    chat = ChatOpenAI(
        base_url=f"{stack.url}/v1", api_key=stack.api_key, model=LM, temperature=0, max_tokens=8,
        max_retries=0,
    )  # fmt: skip
    whole = chat.invoke("Name a fruit.")
    assert isinstance(whole.content, str) and whole.content
    assert whole.usage_metadata is not None and whole.usage_metadata["output_tokens"] <= 8
    streamed = "".join(str(chunk.content) for chunk in chat.stream("Name a fruit."))
    assert streamed == whole.content  # temperature 0: greedy, the same answer
