"""End to end: text generation on the real platform (Ray Serve: gateway -> decode replica, SmolLM2).

Short generations only (SmolLM2-135M on CPU): a contrastive-search completion, a streamed chat
that must equal the non-streamed one, errors raised inside the decode replica arriving as the
same 4xx, clients that leave mid-stream giving their replica slots back, and the
`counterpoint generate` CLI.
"""

from __future__ import annotations

import time

import httpx
import pytest

from counterpoint.errors import LimitExceeded
from counterpoint.settings import Limits, Settings
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

SMOLLM2 = "SmolLM2-135M-Instruct"
QUESTION = "Tell me about the history of the bicycle."
COUNTING = ", ".join(str(i) for i in range(1, 21)) + ","  # greedy continues counting: no early EOS


def decode_detail(stack: Stack) -> str:
    return str(httpx.get(f"{stack.url}/healthz", timeout=10).json()["components"]["decode"]["detail"])


def test_contrastive_search_completion(stack: Stack) -> None:
    client = stack.client()
    cards = {m.id: m for m in client.models()}
    assert cards[SMOLLM2].kind == "causal-lm" and cards[SMOLLM2].context_length
    reply = client.chat(QUESTION, decoding="contrastive_search", top_k=4, penalty_alpha=0.6, max_tokens=16)
    assert reply.model == SMOLLM2 and reply.decoding == "contrastive_search"
    assert "bicycle" in reply.text.lower() or "bike" in reply.text.lower(), reply.text
    assert reply.usage.completion_tokens == 16 and reply.finish_reason == "length"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 16

    raw = client.complete("The capital of France is", max_tokens=12, stop=["."])  # raw text, no template
    assert raw.text.strip() and "." not in raw.text, raw.text
    assert raw.usage.prompt_tokens == 5 and raw.usage.completion_tokens <= 12


def test_streamed_chat_equals_the_whole_answer(stack: Stack) -> None:
    client = stack.client()
    whole = client.chat(QUESTION, max_tokens=16)
    with client.stream_chat(QUESTION, max_tokens=16) as stream:
        deltas = list(stream)
    assert len(deltas) > 3 and "".join(deltas) == whole.text
    assert stream.usage == whole.usage and stream.finish_reason == whole.finish_reason


def test_replica_errors_are_4xx(stack: Stack) -> None:
    client = stack.client()
    too_long = "word " * 2000  # > max_prompt_tokens (1536): checked after tokenizing, in the replica
    with pytest.raises(LimitExceeded, match="1536"):
        client.complete(too_long, max_tokens=4)
    reply = httpx.post(
        f"{stack.url}/v1/completions",
        json={"prompt": too_long, "stream": True},
        headers=stack.headers,
        timeout=60,
    )
    assert reply.status_code == 413 and "max_prompt_tokens" in reply.json()["error"]["message"]
    reply = httpx.post(
        f"{stack.url}/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": "hi"}],
            "decoding": "contrastive_decoding",
            "amateur_layers": 30,
        },
        headers=stack.headers,
        timeout=60,
    )
    assert reply.status_code == 422 and "amateur_layers" in reply.json()["error"]["message"]


def test_a_disconnect_frees_the_replica_slot(stack: Stack) -> None:
    """Fill every slot of the decode replica (max_ongoing_requests) with long generations, leave
    them all mid-stream, then open as many again: they can only start if the abandoned ones gave
    their slots back. Were the generations left running, their slots would stay taken for the
    rest of their max_tokens, which is measured here from their own speed."""
    slots = Settings.model_fields["decode_max_ongoing_requests"].default
    limit = Limits.model_fields["max_tokens_limit"].default
    client = stack.client(timeout=300)
    assert decode_detail(stack).endswith("0 generating")
    streams = [client.stream_complete(COUNTING, max_tokens=limit) for _ in range(slots)]
    started, received = time.monotonic(), 0
    for _ in range(3):
        for stream in streams:
            assert next(stream)  # counting on: no EOS in sight
            received += 1
    rate = received / (time.monotonic() - started)  # deltas/s of the replica, all slots busy
    assert decode_detail(stack).endswith("every slot generating")  # busy, not down
    leaked_for = (slots * limit - received) / rate  # how long the slots would stay taken

    left = time.monotonic()
    for stream in streams:
        stream.close()
    fresh = [client.stream_complete(COUNTING, max_tokens=limit) for _ in range(slots)]
    for stream in fresh:
        assert next(stream)
    waited = time.monotonic() - left
    for stream in fresh:
        stream.close()
    assert waited < leaked_for / 4, f"new generations waited {waited:.1f}s (slots held {leaked_for:.0f}s)"
    deadline = time.monotonic() + 15
    while not decode_detail(stack).endswith("0 generating") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert decode_detail(stack).endswith("0 generating")


def test_generate_cli(stack: Stack) -> None:
    result = stack.cli(
        "generate", "Name a primary color.", "--decoding", "contrastive_search", "--max-tokens", "12"
    )
    assert result.stdout.strip(), result.stderr
    assert "completion tokens" in result.stderr and "Traceback" not in result.stderr
    streamed = stack.cli("generate", "Name a primary color.", "--max-tokens", "12", "--stream")
    assert streamed.stdout.strip()
    bad = stack.cli("generate", "hi", "--max-tokens", "100000", check=False)
    assert bad.returncode == 1 and "max_tokens_limit" in bad.stderr and "Traceback" not in bad.stderr
