"""The causal LM run in this process: `LocalDecoder`, one thread per generation, turns by `FairLock`.

Each generation runs in its own thread and hands its deltas to the event loop through an
``asyncio.Queue``. Concurrent generations take turns token by token under one FIFO lock:
generation is CPU-bound, so running two forward passes at once would only oversubscribe the
cores, while turn-taking keeps every stream moving.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncGenerator, Iterator
from typing import TYPE_CHECKING, Any

from counterpoint.decoding.params import GenerationParams
from counterpoint.errors import InvalidInput, LimitExceeded
from counterpoint.schemas import ModelCard
from counterpoint.services.decode.events import (
    DecodeEvent,
    DecoderStats,
    Prompt,
    StreamEnd,
    StreamStart,
    served_model_name,
)

if TYPE_CHECKING:
    from counterpoint.settings import Settings


class FairLock:
    """A FIFO lock: waiters get it in arrival order, so a thread that releases and re-acquires
    in a loop (one token per turn) cannot starve the others."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._held = False

    def __enter__(self) -> FairLock:
        ticket = object()
        with self._cond:
            self._waiting.append(ticket)
            while self._held or self._waiting[0] is not ticket:
                self._cond.wait()
            self._waiting.popleft()
            self._held = True
        return self

    def __exit__(self, *_: object) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()


_DONE = object()


class LocalDecoder:
    """Runs a causal LM in this process; one thread per generation, one forward pass at a time."""

    def __init__(self, name: str, model: Any, tokenizer: Any, *, max_prompt_tokens: int) -> None:
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.max_prompt_tokens = max_prompt_tokens
        limit = getattr(model.config, "max_position_embeddings", None)
        self.context_length: int | None = limit if isinstance(limit, int) else None
        self._turns = FairLock()  # one forward pass (and tokenizer call) at a time
        self._count_lock = threading.Lock()
        self._active = 0
        self._finished = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalDecoder:
        """Load ``settings.decode_model``: a GGUF file is converted once into its cache dir; a
        registered model is downloaded from the tracking server into ``<data_dir>/models/registry``
        (one directory per version, as for embedders; ``decode_cache_dir`` is the GGUF copy's)."""
        from counterpoint.decoding.loading import load_causal_lm
        from counterpoint.infra.tracking import fetch_causal_lm, is_registry_ref

        if is_registry_ref(settings.decode_model):
            directory = fetch_causal_lm(
                settings.decode_model, settings.tracking_uri, settings.models_dir / "registry"
            )
            model, tokenizer = load_causal_lm(directory)
        else:
            model, tokenizer = load_causal_lm(settings.decode_model, settings.decode_model_dir)
        return cls(
            served_model_name(settings.decode_model),
            model,
            tokenizer,
            max_prompt_tokens=settings.limits.max_prompt_tokens,
        )

    # --- state ---------------------------------------------------------------------------

    @property
    def active(self) -> int:
        """Generations whose thread is still running."""
        return self._active

    async def stats(self) -> DecoderStats:
        return DecoderStats(active=self._active, finished=self._finished)

    async def deployment_status(self) -> str:
        return "HEALTHY"  # in this process: `stats` always answers

    async def models(self) -> list[ModelCard]:
        return [ModelCard(id=self.name, kind="causal-lm", context_length=self.context_length)]

    # --- prompt --------------------------------------------------------------------------

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt: raw text as is, chat messages through the chat template."""
        if isinstance(prompt, str):
            return [int(i) for i in self.tokenizer(prompt)["input_ids"]]
        items = list(prompt)
        if all(isinstance(i, int) and not isinstance(i, bool) for i in items):
            vocab = len(self.tokenizer)
            bad = [i for i in items if not 0 <= i < vocab]  # type: ignore[operator]
            if bad:
                raise InvalidInput(f"token ids out of the vocabulary (size {vocab}): {bad[:5]}")
            return [int(i) for i in items]  # type: ignore[arg-type]
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise InvalidInput(f"model '{self.name}' has no chat template: use /v1/completions")
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in items]  # type: ignore[index]
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
        return [int(i) for i in ids]

    def check_length(self, prompt_tokens: int, max_tokens: int) -> None:
        """413 with the numbers when the prompt, or the prompt plus max_tokens, does not fit."""
        if prompt_tokens > self.max_prompt_tokens:
            raise LimitExceeded(
                f"the prompt has {prompt_tokens} tokens; the limit is {self.max_prompt_tokens} "
                f"(setting max_prompt_tokens; model '{self.name}' has a context of {self.context_length} tokens)"
            )
        if self.context_length is not None and prompt_tokens + max_tokens > self.context_length:
            raise LimitExceeded(
                f"the prompt ({prompt_tokens} tokens) + max_tokens ({max_tokens}) exceeds the context of "
                f"model '{self.name}' ({self.context_length} tokens): shorten the prompt or lower max_tokens"
            )

    def _prepare(self, prompt: Prompt, params: GenerationParams) -> Any:
        from counterpoint.decoding import stream_text

        with self._turns:  # the tokenizer is not safe to share with a running generation
            ids = self.encode(prompt)
        if not ids:
            raise InvalidInput("the prompt encodes to no tokens")
        self.check_length(len(ids), params.max_tokens)
        try:
            return stream_text(self.model, self.tokenizer, ids, **params.generate_kwargs())
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None

    # --- generation ----------------------------------------------------------------------

    def _run(self, text: Iterator[str], emit: Any, stop: threading.Event) -> None:
        """The generation thread: one token per turn until done or told to stop."""
        try:
            while not stop.is_set():
                with self._turns:
                    if stop.is_set():
                        break
                    try:
                        delta = next(text)
                    except StopIteration:
                        emit(
                            StreamEnd(
                                text.prompt_tokens,  # type: ignore[attr-defined]
                                text.generated_tokens,  # type: ignore[attr-defined]
                                text.finish_reason or "length",  # type: ignore[attr-defined]
                            )
                        )
                        break
                emit(delta)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            emit(exc)
        finally:
            text.close()  # type: ignore[attr-defined]
            with self._count_lock:
                self._active -= 1
                self._finished += 1
            emit(_DONE)

    async def stream(self, prompt: Prompt, params: GenerationParams) -> AsyncGenerator[DecodeEvent, None]:
        """Validate and tokenize, yield `StreamStart`, then generate in a thread while iterated."""
        text = await asyncio.to_thread(self._prepare, prompt, params)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone: nobody is listening any more
                stop.set()

        try:
            yield StreamStart(text.prompt_tokens)
        except BaseException:
            text.close()
            raise
        with self._count_lock:
            self._active += 1
        thread = threading.Thread(target=self._run, args=(text, emit, stop), name="decode", daemon=True)
        try:
            thread.start()
        except BaseException:
            with self._count_lock:
                self._active -= 1
            text.close()
            raise
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()  # the consumer left (or the stream ended): the thread stops within a token
