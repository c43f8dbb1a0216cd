"""The official `openai` package pointed at a real stack, with the parameters its users set.

Each parameter the client sends is either honoured or refused with a 4xx that names it (the
client raises its own error classes for those, with our message), never ignored, never a 5xx.
"""

from __future__ import annotations

import numpy as np
import openai
import pytest

from counterpoint.models.export import auto_backend, split_backend, with_backend
from tests.clients.conftest import RERANKER
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

LM = "SmolLM2-135M-Instruct"
EMBED = "all-MiniLM-L6-v2"
COUNTING = ", ".join(str(i) for i in range(1, 21)) + ","  # greedy continues counting


@pytest.fixture(scope="module")
def oa(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.api_key, max_retries=0)


def test_embeddings_str_list_base64_float_and_matryoshka_dimensions(oa: openai.OpenAI, stack: Stack) -> None:
    one = oa.embeddings.create(model=EMBED, input="contrastive learning")  # the client asks for base64
    assert len(one.data) == 1 and len(one.data[0].embedding) == 384
    floats = oa.embeddings.create(
        model=EMBED, input=["contrastive learning", "bread"], encoding_format="float"
    )
    assert [d.index for d in floats.data] == [0, 1]
    np.testing.assert_allclose(one.data[0].embedding, floats.data[0].embedding, atol=1e-6)
    ours = stack.client().embed(["contrastive learning"]).data[0].embedding
    np.testing.assert_allclose(floats.data[0].embedding, ours, atol=1e-6)
    assert floats.usage.prompt_tokens > 0 and split_backend(floats.model)[0] == EMBED  # as served
    short = oa.embeddings.create(model=EMBED, input="contrastive learning", dimensions=64)
    vector = np.asarray(short.data[0].embedding)
    assert vector.shape == (64,) and abs(np.linalg.norm(vector) - 1) < 1e-5
    with pytest.raises(openai.UnprocessableEntityError, match="token ids"):
        oa.embeddings.create(model=EMBED, input=[101, 2023, 102])
    with pytest.raises(openai.NotFoundError, match="gpt-nope"):
        oa.embeddings.create(model="gpt-nope", input="x")


def test_models_list_and_retrieve(oa: openai.OpenAI) -> None:
    kinds = {m.id: (m.model_extra or {}).get("kind") for m in oa.models.list()}
    # every servable model, with its kind (an extra field the client keeps)
    served = with_backend(EMBED, auto_backend(packaged=True))  # `make up`'s default: embed_backend auto
    assert kinds == {served: "embedding", RERANKER: "reranker", LM: "causal-lm"}, kinds
    assert oa.models.retrieve(EMBED).id == served  # the plain name still finds it
    assert oa.models.retrieve(LM).id == LM
    with pytest.raises(openai.NotFoundError, match="not served"):
        oa.models.retrieve("gpt-4o")


def test_completions_temperature_zero_is_greedy_and_reproducible(oa: openai.OpenAI) -> None:
    first = oa.completions.create(model=LM, prompt=COUNTING, max_tokens=6, temperature=0)
    again = oa.completions.create(model=LM, prompt=COUNTING, max_tokens=6, temperature=0, top_p=1)
    assert first.choices[0].text == again.choices[0].text
    assert "21" in first.choices[0].text, first.choices[0].text
    assert first.choices[0].finish_reason == "length" and first.usage.completion_tokens == 6
    cut = oa.completions.create(model=LM, prompt=COUNTING, max_tokens=12, temperature=0, stop=["23"])
    assert "23" not in cut.choices[0].text and cut.choices[0].finish_reason == "stop"
    hot = [
        oa.completions.create(model=LM, prompt="Once upon a time", max_tokens=8, temperature=2, seed=s)
        for s in (1, 1, 2)
    ]
    assert hot[0].choices[0].text == hot[1].choices[0].text  # seeded sampling repeats
    assert hot[0].choices[0].text != hot[2].choices[0].text
    with pytest.raises(openai.UnprocessableEntityError, match="n=1"):
        oa.completions.create(model=LM, prompt=COUNTING, max_tokens=4, n=2)
    with pytest.raises(openai.UnprocessableEntityError, match="temperature"):
        oa.completions.create(model=LM, prompt=COUNTING, max_tokens=4, temperature=2.5)


def test_chat_whole_and_streamed_with_usage(oa: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Name a fruit."}]
    whole = oa.chat.completions.create(model=LM, messages=messages, temperature=0, max_completion_tokens=8)
    text = whole.choices[0].message.content
    assert text and whole.choices[0].message.role == "assistant" and whole.usage.completion_tokens <= 8
    stream = oa.chat.completions.create(
        model=LM, messages=messages, temperature=0, max_tokens=8, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    with pytest.raises(openai.UnprocessableEntityError, match="logprobs"):
        oa.chat.completions.create(model=LM, messages=messages, max_tokens=4, logprobs=True)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=str(oa.base_url), api_key="cp-wrong", max_retries=0).models.list()
