"""Text generation through the real gateway app, with an in-process tiny random causal LM.

The decoder is a `LocalDecoder` (the same code the decode deployment runs) over the tiny
Llama of the decoding tests and the MiniLM tokenizer, given a small chat template.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoTokenizer
from typer.testing import CliRunner

from counterpoint import cli
from counterpoint.client import Client
from counterpoint.decoding import generate_text
from counterpoint.decoding.params import GenerationParams
from counterpoint.errors import InvalidInput, LimitExceeded, NotFound
from counterpoint.generation_eval import evaluate_generation, log_to_mlflow, markdown_table, read_prompts
from counterpoint.models.paths import packaged_minilm_path
from counterpoint.schemas import ChatCompletionChunk, CompletionChunk
from counterpoint.services.decode.backends import (
    DecodeEvent,
    LocalDecoder,
    ServeDecoder,
    StreamEnd,
    StreamStart,
    collect,
)
from counterpoint.services.decode.deployment import DecodeDeployment
from counterpoint.services.gateway.app import create_app
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.services.gateway.generation import GenerationService
from counterpoint.settings import Settings
from tests.decoding.tiny_lm import tiny_llama
from tests.services.test_gateway import assert_error
from tests.settings_factory import with_limits

LM = "tiny-lm"
CONTEXT = 256  # tiny_llama's max_position_embeddings
MAX_TOKENS_LIMIT = 64
MAX_PROMPT_TOKENS = 200
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
PROMPT = "the quick brown fox jumps over"


@pytest.fixture(scope="module")
def lm_tokenizer() -> Any:
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_minilm_path()))
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@pytest.fixture(scope="module")
def lm(lm_tokenizer: Any) -> Any:
    return tiny_llama(lm_tokenizer.vocab_size)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def decoder(lm: Any, lm_tokenizer: Any) -> LocalDecoder:
    return LocalDecoder(LM, lm, lm_tokenizer, max_prompt_tokens=MAX_PROMPT_TOKENS)


@pytest.fixture()
def gen_api(core: GatewayCore, settings: Settings, decoder: LocalDecoder) -> Iterator[TestClient]:
    limits = with_limits(settings, max_tokens_limit=MAX_TOKENS_LIMIT, max_prompt_tokens=MAX_PROMPT_TOKENS)
    service = GenerationService(limits, decoder, LM)
    with TestClient(create_app(core, generation=service), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture()
def sdk(gen_api: TestClient) -> Client:
    client = Client("http://testserver")
    client._http = gen_api  # the TestClient is an httpx.Client: the SDK talks to the app in-process
    return client


def reference(lm: Any, tokenizer: Any, ids: list[int], **options: Any) -> str:
    return generate_text(lm, tokenizer, ids, **options)


def chat_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def read_sse(reply: Any) -> tuple[list[dict[str, Any]], bool]:
    """The JSON events of a server-sent event stream, and whether it ended with [DONE]."""
    events, done = [], False
    for block in reply.text.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        assert not done, "nothing may follow [DONE]"
        data = block.removeprefix("data: ")
        if data == "[DONE]":
            done = True
        else:
            events.append(json.loads(data))
    return events, done


# --- completions -------------------------------------------------------------------------------


def test_completion_equals_the_library(gen_api: TestClient, lm: Any, lm_tokenizer: Any) -> None:
    reply = gen_api.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 12, "model": LM})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    ids = lm_tokenizer(PROMPT)["input_ids"]
    assert body["choices"][0]["text"] == reference(lm, lm_tokenizer, ids, max_new_tokens=12)
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["model"] == LM and body["decoding"] == "greedy"
    assert body["choices"][0]["finish_reason"] == "length" and body["choices"][0]["finish_detail"] == "length"
    assert body["usage"] == {
        "prompt_tokens": len(ids),
        "completion_tokens": 12,
        "total_tokens": len(ids) + 12,
    }


@pytest.mark.parametrize(
    "options",
    [
        {"decoding": "sampling", "temperature": 0.8, "top_p": 0.9, "top_k": 20, "seed": 7},
        {"decoding": "contrastive_search", "top_k": 3, "penalty_alpha": 0.6},
        {
            "decoding": "contrastive_decoding",
            "cd_alpha": 0.1,
            "amateur_layers": 2,
            "amateur_temperature": 0.5,
        },
    ],
    ids=lambda o: o["decoding"],
)
def test_each_method_equals_the_library(
    gen_api: TestClient, lm: Any, lm_tokenizer: Any, options: dict[str, Any]
) -> None:
    reply = gen_api.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 10, **options})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    expected = GenerationParams(max_tokens=10, **options).generate_kwargs()
    ids = lm_tokenizer(PROMPT)["input_ids"]
    assert body["choices"][0]["text"] == reference(lm, lm_tokenizer, ids, **expected)
    assert body["decoding"] == options["decoding"]
    assert body["usage"]["completion_tokens"] == 10


def test_temperature_reads_as_in_the_openai_api(gen_api: TestClient) -> None:
    """0 is greedy (any method named or not); set alone it samples; `decoding` named wins."""

    def complete(**options: Any) -> dict[str, Any]:
        reply = gen_api.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 8, **options})
        assert reply.status_code == 200, reply.text
        return reply.json()

    greedy = complete()
    assert greedy["decoding"] == "greedy"
    for options in ({"temperature": 0}, {"temperature": 0, "decoding": "sampling", "seed": 3}):
        zero = complete(**options)
        assert zero["decoding"] == "greedy" and zero["choices"][0]["text"] == greedy["choices"][0]["text"]
    hot = [complete(temperature=2, seed=seed) for seed in (1, 2)]
    assert {h["decoding"] for h in hot} == {"sampling"}
    assert hot[0]["choices"][0]["text"] != hot[1]["choices"][0]["text"]  # seeded samples, not greedy
    assert complete(top_p=0.5, seed=1)["decoding"] == "sampling"
    assert complete(temperature=0.7, decoding="contrastive_search")["decoding"] == "contrastive_search"


def test_stop_string_cuts_the_text(gen_api: TestClient) -> None:
    full = gen_api.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 24}).json()
    text = full["choices"][0]["text"]
    words = text.split()
    stop = words[len(words) // 2]
    cut = text.index(stop)
    reply = gen_api.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 24, "stop": [stop]})
    body = reply.json()
    assert body["choices"][0]["text"] == text[:cut]
    assert body["choices"][0]["finish_reason"] == "stop" and body["choices"][0]["finish_detail"] == "stop"
    assert body["usage"]["completion_tokens"] <= 24


# --- chat --------------------------------------------------------------------------------------


def test_chat_uses_the_chat_template(gen_api: TestClient, lm: Any, lm_tokenizer: Any) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "tell me about foxes"}]
    reply = gen_api.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 9})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    ids = chat_ids(lm_tokenizer, messages)
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": reference(lm, lm_tokenizer, ids, max_new_tokens=9),
    }
    assert body["usage"]["prompt_tokens"] == len(ids)
    newer = {"messages": messages, "max_completion_tokens": 9}  # OpenAI's newer name
    assert gen_api.post("/v1/chat/completions", json=newer).json()["choices"] == body["choices"]
    both = gen_api.post("/v1/chat/completions", json={**newer, "max_tokens": 5})
    assert_error(both, 422, "invalid_request", "max_tokens=5", "max_completion_tokens=9")
    logprobs = gen_api.post("/v1/chat/completions", json={**newer, "logprobs": True})
    assert_error(logprobs, 422, "invalid_request", "logprobs")


def test_chat_without_a_template_is_a_clear_error(core: GatewayCore, settings: Settings, lm: Any) -> None:
    plain = AutoTokenizer.from_pretrained(str(packaged_minilm_path()))
    service = GenerationService(settings, LocalDecoder(LM, lm, plain, max_prompt_tokens=100), LM)
    with TestClient(create_app(core, generation=service), raise_server_exceptions=False) as api:
        reply = api.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert_error(reply, 422, "invalid_request", "chat template", "/v1/completions")


# --- streaming ---------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/v1/completions", "/v1/chat/completions"])
def test_stream_is_openai_sse_and_equals_the_whole_response(gen_api: TestClient, route: str) -> None:
    chat = route.endswith("chat/completions")
    body: dict[str, Any] = (
        {"messages": [{"role": "user", "content": PROMPT}]} if chat else {"prompt": PROMPT}
    ) | {"max_tokens": 16}
    whole = gen_api.post(route, json=body).json()
    reply = gen_api.post(route, json={**body, "stream": True, "stream_options": {"include_usage": True}})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/event-stream")
    events, done = read_sse(reply)
    assert done, "the stream must end with data: [DONE]"
    model = ChatCompletionChunk if chat else CompletionChunk
    chunks = [model.model_validate(e) for e in events]
    assert len({c.id for c in chunks}) == 1
    *content, finish, usage = chunks
    if chat:
        assert content[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in content)
        expected = whole["choices"][0]["message"]["content"]
    else:
        text = "".join(c.choices[0].text for c in content)
        expected = whole["choices"][0]["text"]
    assert len(content) > 2, "the text arrives in several chunks"
    assert all(c.choices[0].finish_reason is None for c in content)
    assert text == expected
    assert finish.choices[0].finish_reason == "length" and finish.choices[0].finish_detail == "length"
    assert usage.choices == [] and usage.usage is not None
    assert usage.usage.model_dump() == whole["usage"]


def test_stream_without_usage_option_has_no_usage_chunk(gen_api: TestClient) -> None:
    reply = gen_api.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 4, "stream": True})
    events, done = read_sse(reply)
    assert done and all("usage" not in e for e in events)
    assert events[-1]["choices"][0]["finish_reason"] == "length"


def test_client_disconnect_stops_the_generation(gen_api: TestClient, decoder: LocalDecoder, lm: Any) -> None:
    """A client that leaves mid-stream frees its slot: the generation thread stops at once."""
    forwards = []

    def slow(*_: Any) -> None:  # ~20 ms per forward pass: the stream is still running when we leave
        forwards.append(1)
        time.sleep(0.02)

    hook = lm.register_forward_pre_hook(slow)
    try:
        body = {"prompt": PROMPT, "max_tokens": MAX_TOKENS_LIMIT, "stream": True}
        with gen_api.stream("POST", "/v1/completions", json=body) as reply:
            assert reply.status_code == 200
            lines = reply.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            assert json.loads(first.removeprefix("data: "))["choices"][0]["text"]
            time.sleep(0.1)  # a slow reader: the response now waits in send(), outside the generator
            assert decoder.active == 1
        deadline = time.monotonic() + 5
        while decoder.active and time.monotonic() < deadline:
            time.sleep(0.01)
        assert decoder.active == 0, "the generation thread must stop when the client disconnects"
        stopped_at = len(forwards)
        time.sleep(0.2)
        assert len(forwards) == stopped_at < MAX_TOKENS_LIMIT // 2
    finally:
        hook.remove()
    # the slot is free: the next request is served normally
    assert gen_api.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 3}).status_code == 200


class FakeStreamingResponse:
    """A streaming `DeploymentResponseGenerator` stand-in: the replica's generator runs in its
    own task, holding one of the replica's slots until it ends; `cancel()` cancels that task,
    as Ray Serve does (the replica's generator then gets CancelledError at its await)."""

    def __init__(self, events: AsyncGenerator[DecodeEvent, None], handle: FakeDecodeHandle) -> None:
        self.handle = handle
        self.cancelled = False
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._pump(events))

    async def _pump(self, events: AsyncGenerator[DecodeEvent, None]) -> None:
        self.handle.ongoing += 1
        try:
            async with aclosing(events):
                async for event in events:
                    self._queue.put_nowait(("event", event))
            self._queue.put_nowait(("end", None))
        except Exception as exc:  # noqa: BLE001 - handed to the caller, as Ray does
            self._queue.put_nowait(("error", exc))
        finally:
            self.handle.ongoing -= 1

    def __aiter__(self) -> AsyncIterator[DecodeEvent]:
        return self

    async def __anext__(self) -> DecodeEvent:
        kind, value = await self._queue.get()
        if kind == "end":
            raise StopAsyncIteration
        if kind == "error":
            raise value
        return value

    def cancel(self) -> None:
        self.cancelled = True
        self._task.cancel()


class FakeDecodeHandle:
    """The decode deployment's handle, running the real `DecodeDeployment` methods in-process."""

    def __init__(self, decoder: LocalDecoder) -> None:
        replica = object.__new__(DecodeDeployment.func_or_class)  # the class without Serve's wrapper
        replica.decoder = decoder
        self.replica = replica
        self.ongoing = 0  # requests the replica is running: its occupied slots
        self.responses: list[FakeStreamingResponse] = []

    def options(self, **_: Any) -> FakeDecodeHandle:
        return self

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.replica, name)
        handle = self

        class Caller:
            @staticmethod
            def remote(*args: Any) -> Any:
                if name == "complete_stream":
                    response = FakeStreamingResponse(method(*args), handle)
                    handle.responses.append(response)
                    return response
                return method(*args)  # a coroutine: awaited like a DeploymentResponse

        return Caller()


def test_disconnect_through_the_serve_handle_frees_the_replica_slot(
    core: GatewayCore, settings: Settings, decoder: LocalDecoder, lm: Any
) -> None:
    """The stack's path: gateway -> `ServeDecoder` -> the decode replica's generator. A client
    that leaves mid-stream makes the gateway cancel the handle's response, which ends the
    replica's generator (its slot) and the generation thread long before max_tokens."""
    handle = FakeDecodeHandle(decoder)
    limits = with_limits(settings, max_tokens_limit=MAX_TOKENS_LIMIT)
    service = GenerationService(limits, ServeDecoder(handle), LM)  # type: ignore[arg-type]
    forwards = []

    def slow(*_: Any) -> None:  # ~50 ms per forward pass: max_tokens would take over 3 s
        forwards.append(time.monotonic())
        time.sleep(0.05)

    hook = lm.register_forward_pre_hook(slow)
    try:
        with TestClient(create_app(core, generation=service), raise_server_exceptions=False) as api:
            body = {"prompt": PROMPT, "max_tokens": MAX_TOKENS_LIMIT, "stream": True}
            with api.stream("POST", "/v1/completions", json=body) as reply:
                assert reply.status_code == 200
                lines = reply.iter_lines()  # held: a dropped iterator closes the response (a disconnect)
                first = next(line for line in lines if line.startswith("data: "))
                assert json.loads(first.removeprefix("data: "))["choices"][0]["text"]
                time.sleep(0.1)  # the generation goes on while the client is connected
                assert handle.ongoing == 1 and decoder.active == 1 and not handle.responses[0].cancelled
            deadline = time.monotonic() + 5
            while (handle.ongoing or decoder.active) and time.monotonic() < deadline:
                time.sleep(0.01)
            (abandoned,) = handle.responses
            assert abandoned.cancelled, "the gateway must cancel the replica's stream"
            assert handle.ongoing == 0, "the replica's slot must be free once the client left"
            assert decoder.active == 0 and decoder._finished == 1
            stopped_at = len(forwards)
            time.sleep(0.2)
            assert len(forwards) == stopped_at < MAX_TOKENS_LIMIT // 2

            # the freed slot serves the next request; a stream read to its end is not cancelled
            reply = api.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 3})
            assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 3
            assert api.get("/healthz").json()["components"]["decode"]["detail"] == f"{LM}, 0 generating"
    finally:
        hook.remove()
    assert len(handle.responses) == 2 and not handle.responses[1].cancelled and handle.ongoing == 0


def test_replica_errors_reach_the_client_through_the_serve_handle(
    core: GatewayCore, settings: Settings, decoder: LocalDecoder
) -> None:
    """Bad input found in the replica (after tokenizing) is the same 4xx behind the handle."""
    limits = with_limits(settings, max_tokens_limit=MAX_TOKENS_LIMIT)
    service = GenerationService(limits, ServeDecoder(FakeDecodeHandle(decoder)), LM)  # type: ignore[arg-type]
    with TestClient(create_app(core, generation=service), raise_server_exceptions=False) as api:
        for stream in (False, True):
            reply = api.post("/v1/completions", json={"prompt": LONG, "stream": stream})
            assert_error(reply, 413, "limit_exceeded", "prompt has", "max_prompt_tokens")
            body = {
                "prompt": PROMPT,
                "decoding": "contrastive_decoding",
                "amateur_layers": 4,
                "stream": stream,
            }
            assert_error(api.post("/v1/completions", json=body), 422, "invalid_request", "amateur_layers")


def test_concurrent_generations_interleave_and_do_not_mix(decoder: LocalDecoder) -> None:
    params = GenerationParams(max_tokens=20)
    prompts = [PROMPT, "once upon a time", "contrastive search is"]

    async def run_all() -> list[tuple[str, StreamEnd]]:
        return list(await asyncio.gather(*(collect(decoder.stream(p, params)) for p in prompts)))

    together = asyncio.run(run_all())
    alone = [asyncio.run(collect(decoder.stream(p, params))) for p in prompts]
    assert together == alone
    assert decoder.active == 0


def test_the_stream_starts_after_validation(decoder: LocalDecoder) -> None:
    async def first_event() -> Any:
        events = decoder.stream(PROMPT, GenerationParams(max_tokens=3))
        event = await anext(events)
        await events.aclose()
        return event

    start = asyncio.run(first_event())
    assert isinstance(start, StreamStart) and start.prompt_tokens > 0
    assert decoder.active == 0, "a stream closed before its first delta never starts a thread"


# --- bad input ---------------------------------------------------------------------------------

LONG = " ".join(["word"] * (MAX_PROMPT_TOKENS + 10))
NEAR = " ".join(["word"] * (MAX_PROMPT_TOKENS - 5))


@pytest.mark.parametrize(
    ("body", "status", "kind", "words"),
    [
        (
            {"prompt": PROMPT, "decoding": "beam_search"},
            422,
            "invalid_request",
            ["decoding", "contrastive_search"],
        ),
        ({"prompt": PROMPT, "penalty_alpha": 1.5}, 422, "invalid_request", ["penalty_alpha", "1"]),
        ({"prompt": PROMPT, "cd_alpha": -0.1}, 422, "invalid_request", ["cd_alpha", "0"]),
        ({"prompt": PROMPT, "top_k": 0}, 422, "invalid_request", ["top_k", "1"]),
        (
            {"prompt": PROMPT, "decoding": "contrastive_search", "top_k": 65},
            422,
            "invalid_request",
            ["top_k=64"],
        ),
        ({"prompt": PROMPT, "temperature": 2.5}, 422, "invalid_request", ["temperature", "2"]),
        ({"prompt": PROMPT, "temperature": -0.1}, 422, "invalid_request", ["temperature", "0"]),
        (
            {"prompt": PROMPT, "decoding": "contrastive_decoding", "amateur_layers": 4},
            422,
            "invalid_request",
            ["amateur_layers", "between 1 and 3"],
        ),
        ({"prompt": PROMPT, "max_tokens": 0}, 422, "invalid_request", ["max_tokens"]),
        (
            {"prompt": PROMPT, "max_tokens": 65},
            413,
            "limit_exceeded",
            ["max_tokens=65", "64", "max_tokens_limit"],
        ),
        ({"prompt": PROMPT, "max_tokens": 5000}, 413, "limit_exceeded", ["64"]),
        ({"prompt": ""}, 422, "invalid_request", ["prompt", "empty"]),
        ({"prompt": "   "}, 422, "invalid_request", ["prompt", "empty"]),
        ({}, 422, "invalid_request", ["prompt"]),
        ({"prompt": PROMPT, "stop": ["a", "b", "c", "d", "e"]}, 422, "invalid_request", ["stop", "4"]),
        ({"prompt": PROMPT, "stop": [""]}, 422, "invalid_request", ["stop"]),
        ({"prompt": PROMPT, "n": 2}, 422, "invalid_request", ["n=1"]),
        ({"prompt": PROMPT, "frequency_penalty": 0.5}, 422, "invalid_request", ["frequency_penalty"]),
        ({"prompt": PROMPT, "model": "gpt-4"}, 404, "not_found", ["gpt-4", LM]),
        (
            {"prompt": LONG},
            413,
            "limit_exceeded",
            ["prompt has", str(MAX_PROMPT_TOKENS), "max_prompt_tokens"],
        ),
        ({"prompt": NEAR, "max_tokens": 64}, 413, "limit_exceeded", ["max_tokens (64)", str(CONTEXT)]),
    ],  # fmt: skip
)
@pytest.mark.parametrize("stream", [False, True])
def test_bad_completion_requests(
    gen_api: TestClient, body: dict[str, Any], status: int, kind: str, words: list[str], stream: bool
) -> None:
    reply = gen_api.post("/v1/completions", json={**body, "stream": stream})
    assert reply.headers["content-type"].startswith("application/json"), "errors come before any event"
    assert_error(reply, status, kind, *words)


@pytest.mark.parametrize(
    ("messages", "words"),
    [
        ([], ["messages"]),
        ([{"role": "user", "content": "  "}], ["messages", "text"]),
        ([{"role": "robot", "content": "hi"}], ["role"]),
        ([{"role": "user"}], ["content"]),
        ("hello", ["messages"]),
    ],
)
def test_bad_chat_requests(gen_api: TestClient, messages: Any, words: list[str]) -> None:
    reply = gen_api.post("/v1/chat/completions", json={"messages": messages})
    assert_error(reply, 422, "invalid_request", *words)


def test_generation_disabled_is_a_503_saying_how_to_enable(api: TestClient) -> None:
    for route, body in (
        ("/v1/completions", {"prompt": PROMPT}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": PROMPT}]}),
    ):
        assert_error(api.post(route, json=body), 503, "unavailable", "COUNTERPOINT_DECODE_ENABLED")
    assert [m["kind"] for m in api.get("/v1/models").json()["data"]] == ["embedding"]


# --- models, health ----------------------------------------------------------------------------


def test_models_and_health_include_the_causal_lm(gen_api: TestClient) -> None:
    cards = {m["id"]: m for m in gen_api.get("/v1/models").json()["data"]}
    assert cards[LM]["kind"] == "causal-lm" and cards[LM]["context_length"] == CONTEXT
    assert cards["tiny"]["kind"] == "embedding"
    health = gen_api.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["components"]["decode"]["detail"] == f"{LM}, 0 generating"


# --- SDK and CLI -------------------------------------------------------------------------------


def test_sdk_complete_chat_and_streams(sdk: Client) -> None:
    whole = sdk.complete(PROMPT, max_tokens=10, decoding="contrastive_search", top_k=3)
    assert whole.usage.completion_tokens == 10 and whole.finish_reason == "length"
    with sdk.stream_complete(PROMPT, max_tokens=10, decoding="contrastive_search", top_k=3) as deltas:
        assert "".join(deltas) == whole.text
    assert deltas.usage == whole.usage and deltas.finish_reason == "length" and deltas.text == whole.text

    answer = sdk.chat("tell me about foxes", max_tokens=8)
    assert answer.text and answer.choices[0].message.role == "assistant"
    streamed = sdk.stream_chat([{"role": "user", "content": "tell me about foxes"}], max_tokens=8)
    assert "".join(streamed) == answer.text and streamed.usage == answer.usage


def test_sdk_raises_the_gateways_errors(sdk: Client) -> None:
    with pytest.raises(LimitExceeded, match="max_tokens_limit"):
        sdk.complete(PROMPT, max_tokens=1000)
    with pytest.raises(LimitExceeded, match="max_tokens_limit"):
        sdk.stream_complete(PROMPT, max_tokens=1000)
    with pytest.raises(InvalidInput, match="penalty_alpha"):
        sdk.stream_chat("hi", penalty_alpha=2)
    with pytest.raises(NotFound, match="ghost"):
        sdk.chat("hi", model="ghost")


def test_cli_generate(sdk: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "client", lambda: sdk)
    runner = CliRunner()
    whole = sdk.chat("tell me about foxes", max_tokens=6, decoding="contrastive_search")
    result = runner.invoke(
        cli.app, ["generate", "tell me about foxes", "--decoding", "contrastive_search", "--max-tokens", "6"]
    )
    assert result.exit_code == 0, result.output
    assert whole.text in result.stdout
    streamed = runner.invoke(
        cli.app,
        [
            "generate",
            "tell me about foxes",
            "--decoding",
            "contrastive_search",
            "--max-tokens",
            "6",
            "--stream",
        ],
    )
    assert streamed.exit_code == 0, streamed.output
    assert whole.text in streamed.stdout
    assert "completion tokens" in streamed.stderr
    raw = runner.invoke(cli.app, ["generate", PROMPT, "--raw", "--max-tokens", "5", "--json"])
    assert json.loads(raw.stdout)["usage"]["completion_tokens"] == 5


def test_eval_generation_scores_every_method_and_logs_to_mlflow(sdk: Client, tmp_path: Path) -> None:
    prompts = read_prompts()[:2]
    methods = ["greedy", "sampling", "contrastive_search", "contrastive_decoding"]
    results = evaluate_generation(
        sdk, prompts, methods, max_tokens=12, overrides={"contrastive_decoding": {"amateur_layers": 2}}
    )
    assert [r.method for r in results] == methods
    for result in results:
        assert len(result.continuations) == 2 and result.completion_tokens > 0
        m = result.metrics
        assert 0 <= m.rep_2 <= 100 and 0 <= m.diversity <= 1
        assert m.coherence is not None and -1 <= m.coherence <= 1
    assert "contrastive_search" in markdown_table(results)

    from mlflow import MlflowClient

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_to_mlflow(tracking, results, prompts, {"model": LM, "num_prompts": 2, "max_tokens": 12})
    mlflow_client = MlflowClient(tracking)
    parent = mlflow_client.get_run(run_id)
    assert parent.data.params["model"] == LM
    assert "contrastive_search.rep_2" in parent.data.metrics
    artifacts = {a.path for a in mlflow_client.list_artifacts(run_id)}
    assert {"generation_eval.md", "generation_eval.json", "samples.jsonl"} <= artifacts
    children = mlflow_client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    assert sorted(c.data.params["method"] for c in children) == sorted(methods)


def test_read_prompts_rejects_bad_files(tmp_path: Path) -> None:
    assert len(read_prompts()) == 20
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n')
    with pytest.raises(InvalidInput, match="prompt"):
        read_prompts(bad)
    with pytest.raises(InvalidInput, match="no such file"):
        read_prompts(tmp_path / "missing.jsonl")


def test_cli_eval_generation(sdk: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "client", lambda: sdk)
    args = ["eval-generation", "--num-prompts", "1", "--max-tokens", "6", "-m", "greedy,contrastive_search"]
    result = CliRunner().invoke(cli.app, [*args, "--no-mlflow", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["method"] for r in rows] == ["greedy", "contrastive_search"]
    assert all(r["completion_tokens"] == 6 and r["coherence"] is not None for r in rows)
    table = CliRunner().invoke(cli.app, [*args, "--no-mlflow"])
    assert table.exit_code == 0 and "contrastive_search" in table.stdout
    bad = CliRunner().invoke(cli.app, ["eval-generation", "-m", "beam", "--no-mlflow"])
    assert bad.exit_code != 0 and "beam" in str(bad.exception)


class BusyDecoder:
    """A decoder whose replica never answers `stats` (every slot generating) and whose deployment
    Serve reports as ``state``."""

    def __init__(self, state: str) -> None:
        self.state = state

    async def stats(self) -> Any:
        await asyncio.sleep(3600)

    async def deployment_status(self) -> str:
        return self.state


@pytest.mark.parametrize(
    ("state", "status", "detail"),
    [
        ("HEALTHY", "ok", f"{LM}, every slot generating"),
        ("UNHEALTHY", "down", "the replica does not answer; Serve says UNHEALTHY"),
    ],
)
def test_health_of_a_replica_busy_in_every_slot_comes_from_serve(
    settings: Settings, state: str, status: str, detail: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/healthz must not report a decode replica down because its slots are all generating."""
    from counterpoint.services.gateway import generation

    monkeypatch.setattr(generation, "STATS_WAIT_S", 0.05)
    service = GenerationService(settings, BusyDecoder(state), LM)  # type: ignore[arg-type]
    health = asyncio.run(service.health())
    assert (health.status, health.detail) == (status, detail)
