"""The decoding methods, one module each, behind one interface: ``DECODERS[name]``.

``DECODERS[name].from_options(model, options)`` validates and builds a
:class:`~counterpoint.decoding.methods.base.Decoder`; its ``steps(ids, max_new_tokens, eos)``
is the one step loop all methods share. Names follow ``params.DECODING_METHODS``.

May import the rest of :mod:`counterpoint.decoding` (cached_forward, scores, options, streams,
amateur, params) and the counterpoint base; nothing above it. The streaming functions that
used to live in the module ``counterpoint.decoding.methods`` (``generate``, ``TokenStream``, ...)
are found here too (lazily, through the package), for old imports.
"""

from __future__ import annotations

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


def __getattr__(name: str) -> Any:
    """The package's public names (``generate``, ``TokenStream``, ...), for old imports of this module."""
    import counterpoint.decoding as package

    if name in package.__all__:
        return getattr(package, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
