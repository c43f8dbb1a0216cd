"""How the gateway reaches the causal LM: in-process, or through a streaming Serve handle.

Both satisfy `DecoderBackend` (:mod:`.events`). A generation is an async stream of events: first a
`StreamStart` (sent once the prompt is tokenized and every option validated, so bad input
fails before any output), then text deltas (``str``), then a `StreamEnd` with the token
counts and why generation ended. Closing the stream early (a client that went away)
stops the generation within one token and frees its slot.

`LocalDecoder` (:mod:`.local`) runs the model in this process, `ServeDecoder`
(:mod:`.serve_handle`) calls the decode deployment; this module re-exports both, with the event types. May import the counterpoint base and decoding; not the gateway.
"""

from __future__ import annotations

from counterpoint.services.decode.events import (
    DecodeEvent,
    DecoderBackend,
    DecoderStats,
    Prompt,
    StreamEnd,
    StreamStart,
    collect,
    served_model_name,
)
from counterpoint.services.decode.local import FairLock, LocalDecoder
from counterpoint.services.decode.serve_handle import ServeDecoder

__all__ = [
    "DecodeEvent",
    "DecoderBackend",
    "DecoderStats",
    "FairLock",
    "LocalDecoder",
    "Prompt",
    "ServeDecoder",
    "StreamEnd",
    "StreamStart",
    "collect",
    "served_model_name",
]
