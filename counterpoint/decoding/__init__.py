"""Decoding library: greedy, sampling, contrastive search and contrastive decoding, streamed.

Usable without Ray: load a causal LM with :func:`load_causal_lm`, encode a prompt with
:func:`encode_prompt`, then iterate :func:`generate` (token ids) or :func:`stream_text`
(text deltas). :class:`GenerationParams` holds the options as the HTTP API exposes them;
:mod:`counterpoint.decoding.metrics` measures repetition, diversity and coherence.
"""

from __future__ import annotations

from counterpoint.decoding.amateur import default_amateur_layers, early_exit_logits, truncated_amateur
from counterpoint.decoding.loading import (
    SMOLLM2_NAME,
    encode_prompt,
    load_causal_lm,
    load_prompts,
    smollm2_gguf_path,
)
from counterpoint.decoding.methods import (
    TextStream,
    TokenStream,
    contrastive_decoding_scores,
    contrastive_search_scores,
    eos_token_ids,
    filter_logits,
    generate,
    generate_text,
    stream_text,
)
from counterpoint.decoding.params import DECODING_METHODS, DecodingMethod, GenerationParams

__all__ = [
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
