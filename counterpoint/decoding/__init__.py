"""Decoding library: greedy, sampling, contrastive search and contrastive decoding, streamed.

Usable without Ray: load a causal LM with :func:`load_causal_lm`, encode a prompt with
:func:`encode_prompt`, then iterate :func:`generate` (token ids) or :func:`stream_text`
(text deltas). :class:`GenerationParams` holds the options as the HTTP API exposes them;
:mod:`counterpoint.decoding.metrics` measures repetition, diversity and coherence.

The names below are imported lazily (PEP 562): ``counterpoint.decoding.params`` is part of
the API schemas, which the SDK and CLI import, and must not pull in torch and transformers.

Modules: ``params`` (the API's options, no torch), ``options`` (the library's, validated),
``methods/`` (one module per method behind ``DECODERS[name]``), ``scores`` (the choice rules),
``cached_forward`` (the model pass and KV cache), ``streams`` (token/text streams, stop strings
via ``stopping``), ``generation`` (``generate``/``stream_text``), ``amateur``, ``loading``,
``metrics``. This package may import the counterpoint base (errors, settings, jsonl, textfiles,
models) only: a registered model (``models:/``) is downloaded by
``counterpoint.infra.tracking.fetch_causal_lm`` and then loaded here as a directory.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from counterpoint.decoding.amateur import default_amateur_layers, early_exit_logits, truncated_amateur
    from counterpoint.decoding.generation import eos_token_ids, generate, generate_text, stream_text
    from counterpoint.decoding.loading import (
        SMOLLM2_NAME,
        encode_prompt,
        load_causal_lm,
        load_prompts,
        smollm2_gguf_path,
    )
    from counterpoint.decoding.methods import DECODERS
    from counterpoint.decoding.params import DECODING_METHODS, DecodingMethod, GenerationParams
    from counterpoint.decoding.scores import (
        contrastive_decoding_scores,
        contrastive_search_scores,
        filter_logits,
    )
    from counterpoint.decoding.streams import TextStream, TokenStream

_WHERE = {
    "default_amateur_layers": "amateur",
    "early_exit_logits": "amateur",
    "truncated_amateur": "amateur",
    "SMOLLM2_NAME": "loading",
    "encode_prompt": "loading",
    "load_causal_lm": "loading",
    "load_prompts": "loading",
    "smollm2_gguf_path": "loading",
    "DECODERS": "methods",
    "TextStream": "streams",
    "TokenStream": "streams",
    "contrastive_decoding_scores": "scores",
    "contrastive_search_scores": "scores",
    "filter_logits": "scores",
    "eos_token_ids": "generation",
    "generate": "generation",
    "generate_text": "generation",
    "stream_text": "generation",
    "DECODING_METHODS": "params",
    "DecodingMethod": "params",
    "GenerationParams": "params",
}

__all__ = [
    "DECODERS",
    "DECODING_METHODS",
    "SMOLLM2_NAME",
    "DecodingMethod",
    "GenerationParams",
    "TextStream",
    "TokenStream",
    "contrastive_decoding_scores",
    "contrastive_search_scores",
    "default_amateur_layers",
    "early_exit_logits",
    "encode_prompt",
    "eos_token_ids",
    "filter_logits",
    "generate",
    "generate_text",
    "load_causal_lm",
    "load_prompts",
    "smollm2_gguf_path",
    "stream_text",
    "truncated_amateur",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module != "params":  # loading sets HF_HUB_OFFLINE before transformers is first imported
        importlib.import_module(f"{__name__}.loading")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
