"""Generating from one prompt: validate every option, pick the method, stream tokens or text.

:func:`generate` yields token ids (:class:`~counterpoint.decoding.streams.TokenStream`),
:func:`stream_text` text deltas (:class:`~counterpoint.decoding.streams.TextStream`),
:func:`generate_text` the whole continuation. The method comes from
:data:`counterpoint.decoding.methods.DECODERS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

import torch

from counterpoint.decoding.cached_forward import prompt_tensor
from counterpoint.decoding.methods import DECODERS
from counterpoint.decoding.options import DecodingOptions, GenerateOptions
from counterpoint.decoding.params import DECODING_METHODS, DEFAULT_MAX_TOKENS
from counterpoint.decoding.stopping import normalize_stops
from counterpoint.decoding.streams import RawTokens, TextStream, TokenStream

PromptIds = Sequence[int] | torch.Tensor
"""One prompt's token ids: a list, a 1-D tensor or a ``(1, T)`` tensor."""


def eos_token_ids(model: Any, tokenizer: Any, eos_token_id: int | Sequence[int] | None = None) -> set[int]:
    """End-of-sequence ids: ``eos_token_id`` if given, else the model's generation config's and the tokenizer's."""
    if eos_token_id is not None:
        return {int(eos_token_id)} if isinstance(eos_token_id, int) else {int(i) for i in eos_token_id}
    found: set[int] = set()
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (config_eos, getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            found.add(value)
        elif value is not None:
            found.update(int(v) for v in value)
    return found


def _build(
    model: Any,
    tokenizer: Any,
    prompt_ids: PromptIds,
    method: str,
    *,
    max_new_tokens: int = DEFAULT_MAX_TOKENS,
    stop: str | Sequence[str] | None = None,
    stop_on_eos: bool = True,
    eos_token_id: int | Sequence[int] | None = None,
    **choice: Any,
) -> tuple[RawTokens, Any, list[str], int]:
    """Validate every option (ValueError with a clear message), then build the raw stream.

    Returns the arguments of a stream: raw tokens, tokenizer, stop strings, prompt length.
    ``choice``: the fields of :class:`DecodingOptions` (temperature, top_k, ..., amateur_temperature).
    """
    if method not in DECODING_METHODS:
        raise ValueError(f"unknown decoding method {method!r}; expected one of {', '.join(DECODING_METHODS)}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    options = DecodingOptions(**choice)
    options.check()
    stops = normalize_stops(stop)
    ids = prompt_tensor(prompt_ids)
    limit = getattr(model.config, "max_position_embeddings", None)
    if isinstance(limit, int) and ids.shape[1] + max_new_tokens > limit:
        raise ValueError(
            f"prompt ({ids.shape[1]} tokens) + max_new_tokens ({max_new_tokens}) exceeds the model's "
            f"context of {limit} tokens"
        )
    eos = eos_token_ids(model, tokenizer, eos_token_id) if stop_on_eos else set()
    decoder = DECODERS[method].from_options(model, options)
    return decoder.steps(ids, max_new_tokens, eos), tokenizer, stops, int(ids.shape[1])


def generate(
    model: Any,
    tokenizer: Any,
    prompt_ids: PromptIds,
    method: str = "greedy",
    **options: Unpack[GenerateOptions],
) -> TokenStream:
    """Continue one prompt with ``method``; yields new token ids one at a time.

    Options are validated here, eagerly (``ValueError``); the model runs as the stream is
    consumed. Options a method does not use are ignored. ``top_k`` is the number of
    candidates for contrastive search (default 4) and an optional filter for sampling.
    ``eos_token_id`` defaults to the model's generation config and the tokenizer's EOS;
    ``stop_on_eos=False`` ignores EOS. The tokenizer is used for stop strings only.
    See :class:`~counterpoint.decoding.options.GenerateOptions` for every option.
    """
    return TokenStream(*_build(model, tokenizer, prompt_ids, method, **options))


def stream_text(
    model: Any,
    tokenizer: Any,
    prompt_ids: PromptIds,
    method: str = "greedy",
    **options: Unpack[GenerateOptions],
) -> TextStream:
    """Like :func:`generate` but yields decoded text deltas, cut exactly at a stop string."""
    return TextStream(*_build(model, tokenizer, prompt_ids, method, **options))


def generate_text(*args: Any, **kwargs: Any) -> str:
    """The whole continuation as one string (same arguments as :func:`stream_text`)."""
    return "".join(stream_text(*args, **kwargs))
