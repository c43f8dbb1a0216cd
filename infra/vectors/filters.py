"""Translate Counterpoint's ``Filter`` into each backend's native filter type.

One translator, given each engine's constructors (a ``_Vocabulary``). Both engines take
booleans and strings/integers through different match types, so a ``MatchAny`` mixing them
is split into one condition per kind and OR-ed (a nested ``should`` filter).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import qdrant_edge as qe

from counterpoint.schemas import Condition, Filter, MatchAny

if TYPE_CHECKING:
    from qdrant_client import models as qm


def _split_any(values: Sequence[str | int | bool]) -> tuple[list[str], list[int], list[bool]]:
    """Partition match-any values into strings, integers and booleans (bool is not an int here)."""
    strings = [v for v in values if isinstance(v, str)]
    bools = [v for v in values if isinstance(v, bool)]
    ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return strings, ints, bools


@dataclass(frozen=True)
class _Vocabulary:
    """One engine's filter constructors, called with the same keywords by both engines."""

    condition: Callable[..., Any]  # FieldCondition(key=..., range=... | match=...)
    range: Callable[..., Any]  # (gte=, gt=, lte=, lt=)
    match_value: Callable[[Any], Any]
    match_any: Callable[[list[Any]], Any]
    filter: Callable[..., Any]  # (must=, should=, must_not=)


def _condition(cond: Condition, v: _Vocabulary) -> Any:
    if cond.range is not None:
        r = cond.range
        return v.condition(key=cond.key, range=v.range(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt))
    if isinstance(cond.match, MatchAny):
        strings, ints, bools = _split_any(cond.match.any)
        parts = [v.condition(key=cond.key, match=v.match_any(group)) for group in (strings, ints) if group]
        parts += [v.condition(key=cond.key, match=v.match_value(b)) for b in bools]
        return parts[0] if len(parts) == 1 else v.filter(should=parts)
    assert cond.match is not None
    return v.condition(key=cond.key, match=v.match_value(cond.match))


def _translate(flt: Filter | None, vocabulary: Callable[[], _Vocabulary]) -> Any:
    if flt is None or not (flt.must or flt.should or flt.must_not):
        return None
    v = vocabulary()
    return v.filter(
        must=[_condition(c, v) for c in flt.must] or None,
        should=[_condition(c, v) for c in flt.should] or None,
        must_not=[_condition(c, v) for c in flt.must_not] or None,
    )


def _edge_value(value: Any) -> Any:
    # qdrant-edge 0.9 reads a Python bool as the integer 1/0 (bool subclasses int), so
    # MatchValue(True) never matches a stored true; numpy.bool_ is read as a real bool.
    return np.bool_(value) if isinstance(value, bool) else value


_EDGE = _Vocabulary(
    condition=qe.FieldCondition,
    range=qe.RangeFloat,
    match_value=lambda value: qe.MatchValue(_edge_value(value)),
    match_any=qe.MatchAny,
    filter=qe.Filter,
)


@functools.cache
def _qdrant() -> _Vocabulary:
    from qdrant_client import models as qm  # imported here: qdrant_client takes ~0.7 s to import

    return _Vocabulary(
        condition=qm.FieldCondition,
        range=qm.Range,
        match_value=lambda value: qm.MatchValue(value=value),
        match_any=lambda values: qm.MatchAny(any=values),
        filter=qm.Filter,
    )


def to_edge_filter(flt: Filter | None) -> qe.Filter | None:
    """Our filter as a ``qdrant_edge.Filter``; None when there is nothing to filter on."""
    return _translate(flt, lambda: _EDGE)


def to_qdrant_filter(flt: Filter | None) -> qm.Filter | None:
    """Our filter as a ``qdrant_client.models.Filter``; None when there is nothing to filter on."""
    return _translate(flt, _qdrant)
