"""Translate Counterpoint's ``Filter`` into each backend's native filter type.

One small translator per backend. Both engines take booleans and strings/integers through
different match types, so a ``MatchAny`` mixing them is split into one condition per kind
and OR-ed (a nested ``should`` filter).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import qdrant_edge as qe

from counterpoint.schemas import Condition, Filter, MatchAny

if TYPE_CHECKING:
    from qdrant_client import models as qm

T = TypeVar("T")


def _split_any(values: Sequence[str | int | bool]) -> tuple[list[str], list[int], list[bool]]:
    """Partition match-any values into strings, integers and booleans (bool is not an int here)."""
    strings = [v for v in values if isinstance(v, str)]
    bools = [v for v in values if isinstance(v, bool)]
    ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return strings, ints, bools


def _any_of(parts: list[T], wrap: Callable[[list[T]], T]) -> T:
    return parts[0] if len(parts) == 1 else wrap(parts)


# --- qdrant-edge -----------------------------------------------------------------------------


def _edge_value(value: str | int | bool) -> Any:
    # qdrant-edge 0.9 reads a Python bool as the integer 1/0 (bool subclasses int), so
    # MatchValue(True) never matches a stored true; numpy.bool_ is read as a real bool.
    return np.bool_(value) if isinstance(value, bool) else value


def _edge_condition(cond: Condition) -> Any:
    if cond.range is not None:
        r = cond.range
        return qe.FieldCondition(key=cond.key, range=qe.RangeFloat(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt))
    if isinstance(cond.match, MatchAny):
        strings, ints, bools = _split_any(cond.match.any)
        parts: list[Any] = [
            qe.FieldCondition(key=cond.key, match=qe.MatchAny(v)) for v in (strings, ints) if v
        ]
        parts += [qe.FieldCondition(key=cond.key, match=qe.MatchValue(_edge_value(b))) for b in bools]
        return _any_of(parts, lambda p: qe.Filter(should=p))
    assert cond.match is not None
    return qe.FieldCondition(key=cond.key, match=qe.MatchValue(_edge_value(cond.match)))


def to_edge_filter(flt: Filter | None) -> qe.Filter | None:
    """Our filter as a ``qdrant_edge.Filter``; None when there is nothing to filter on."""
    if flt is None or not (flt.must or flt.should or flt.must_not):
        return None
    return qe.Filter(
        must=[_edge_condition(c) for c in flt.must] or None,
        should=[_edge_condition(c) for c in flt.should] or None,
        must_not=[_edge_condition(c) for c in flt.must_not] or None,
    )


# --- qdrant-client ---------------------------------------------------------------------------


def _qdrant_condition(cond: Condition) -> Any:
    from qdrant_client import models as qm  # imported here: qdrant_client takes ~0.7 s to import

    if cond.range is not None:
        r = cond.range
        return qm.FieldCondition(key=cond.key, range=qm.Range(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt))
    if isinstance(cond.match, MatchAny):
        strings, ints, bools = _split_any(cond.match.any)
        parts: list[Any] = [
            qm.FieldCondition(key=cond.key, match=qm.MatchAny(any=v)) for v in (strings, ints) if v
        ]
        parts += [qm.FieldCondition(key=cond.key, match=qm.MatchValue(value=b)) for b in bools]
        return _any_of(parts, lambda p: qm.Filter(should=p))
    assert cond.match is not None
    return qm.FieldCondition(key=cond.key, match=qm.MatchValue(value=cond.match))


def to_qdrant_filter(flt: Filter | None) -> qm.Filter | None:
    """Our filter as a ``qdrant_client.models.Filter``; None when there is nothing to filter on."""
    if flt is None or not (flt.must or flt.should or flt.must_not):
        return None
    from qdrant_client import models as qm

    return qm.Filter(
        must=[_qdrant_condition(c) for c in flt.must] or None,
        should=[_qdrant_condition(c) for c in flt.should] or None,
        must_not=[_qdrant_condition(c) for c in flt.must_not] or None,
    )
