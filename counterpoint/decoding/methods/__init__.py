"""The decoding methods, one module each, behind one interface: ``DECODERS[name]``.

``DECODERS[name].from_options(model, options)`` validates and builds a
:class:`~counterpoint.decoding.methods.base.Decoder`; its ``steps(ids, max_new_tokens, eos)``
is the one step loop all methods share. Names follow ``params.DECODING_METHODS``.

May import the rest of :mod:`counterpoint.decoding` (cached_forward, scores, options, streams,
amateur, params) and the counterpoint base; nothing above it. The streaming functions that
used to live in the module ``counterpoint.decoding.methods`` (``generate``, ``TokenStream``, ...)
are re-exported from here lazily, for old imports.
"""

from __future__ import annotations

import importlib
from typing import Any

from counterpoint.decoding.methods.base import Decoder
from counterpoint.decoding.methods.contrastive_decoding import ContrastiveDecoding
from counterpoint.decoding.methods.contrastive_search import ContrastiveSearch
from counterpoint.decoding.methods.greedy import Greedy
from counterpoint.decoding.methods.sampling import Sampling

DECODERS: dict[str, type[Decoder]] = {
    cls.name: cls for cls in (Greedy, Sampling, ContrastiveSearch, ContrastiveDecoding)
}

__all__ = ["DECODERS", "ContrastiveDecoding", "ContrastiveSearch", "Decoder", "Greedy", "Sampling"]

_MOVED = {
    "TextStream": "streams",
    "TokenStream": "streams",
    "contrastive_decoding_scores": "scores",
    "contrastive_search_scores": "scores",
    "filter_logits": "scores",
    "prompt_tensor": "cached_forward",
    "eos_token_ids": "generation",
    "generate": "generation",
    "generate_text": "generation",
    "stream_text": "generation",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"counterpoint.decoding.{module}"), name)
