"""LlamaIndex against a running gateway, run by `.venv-llamaindex`'s interpreter (see
llamaindex-requirements.txt): `OpenAIEmbedding` builds a `VectorStoreIndex` and retrieves, `OpenAILike`
completes and chats, whole and streamed. Prints what it got as one JSON object for the test to check.

Usage: python llamaindex_scenario.py URL API_KEY EMBED_MODEL LM
"""

from __future__ import annotations

import json
import sys

from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.llms import ChatMessage
from llama_index.embeddings.openai import OpenAIEmbedding
from llama_index.llms.openai_like import OpenAILike

DOCS = ["Bicycles have two wheels and pedals.", "Sourdough bread rises with wild yeast."]
QUESTION = [ChatMessage(role="user", content="Name a fruit.")]


def main(url: str, api_key: str, embed_model: str, lm: str) -> dict[str, object]:
    # `model_name` sends our model's name; `model` stays OpenAI's default, which the class validates
    embedding = OpenAIEmbedding(model_name=embed_model, api_base=f"{url}/v1", api_key=api_key, max_retries=0)
    Settings.embed_model = embedding
    index = VectorStoreIndex.from_documents([Document(text=d) for d in DOCS])
    hits = index.as_retriever(similarity_top_k=1).retrieve("how does bread rise?")

    def llm(chat: bool) -> OpenAILike:
        # OpenAILike, LlamaIndex's class for OpenAI-compatible servers: OpenAI() refuses unknown model names
        return OpenAILike(
            model=lm, api_base=f"{url}/v1", api_key=api_key, temperature=0, max_tokens=8, max_retries=0,
            context_window=2048, is_chat_model=chat,
        )  # fmt: skip

    return {
        "top_hit": hits[0].node.get_content(),
        "vector": embedding.get_text_embedding(DOCS[0]),
        "complete": llm(chat=False).complete("Name a fruit.").text,
        "stream_complete": "".join(c.delta or "" for c in llm(chat=False).stream_complete("Name a fruit.")),
        "chat": llm(chat=True).chat(QUESTION).message.content,
        "stream_chat": "".join(c.delta or "" for c in llm(chat=True).stream_chat(QUESTION)),
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
