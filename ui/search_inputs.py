"""What the search page reads from text boxes: payload filters, payload index specs, terms to highlight.

Plain functions (no Streamlit calls); bad input is an ``InvalidInput`` the page shows as a message.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from counterpoint.errors import InvalidInput
from counterpoint.schemas import FieldType

STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "does", "for", "from", "how", "in", "is", "it", "of",
    "on", "or", "that", "the", "this", "to", "was", "were", "what", "when", "which", "who", "why", "with",
})  # fmt: skip
FILTER_OPS = ("=", "!=", "in", "not in", ">", ">=", "<", "<=")
_RANGE = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
INDEX_TYPES = ("keyword", "integer", "float", "bool")


def query_terms(query: str) -> list[str]:
    """The words of a query worth highlighting (no stopwords, at least two characters)."""
    words = re.findall(r"\w+", query.lower())
    return sorted({w for w in words if len(w) > 1 and w not in STOPWORDS}, key=len, reverse=True)


def highlight(text: str, terms: Sequence[str]) -> str:
    """HTML-escaped ``text`` with every word that starts with a query term wrapped in ``<mark>``."""
    safe = html.escape(text)
    if not terms:
        return safe
    pattern = re.compile(
        r"\b((?:" + "|".join(re.escape(html.escape(t)) for t in terms) + r")\w*)", re.IGNORECASE
    )
    return pattern.sub(r"<mark>\1</mark>", safe)


def coerce(value: str, kind: FieldType) -> str | int | float | bool:
    """Read a filter value typed in a text box as the indexed field's type."""
    text = value.strip()
    try:
        if kind == "integer":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise InvalidInput(f"'{text}' is not a valid {kind}") from None
    if kind == "bool":
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise InvalidInput(f"'{text}' is not true or false")
    return text


def build_filter(
    rows: Iterable[tuple[str, str, str]], indexes: Mapping[str, FieldType]
) -> dict[str, Any] | None:
    """Turn (field, op, value) rows into a Qdrant-style filter; rows without a value are ignored."""
    must: list[dict[str, Any]] = []
    must_not: list[dict[str, Any]] = []
    for key, op, raw in rows:
        if not key or not str(raw).strip():
            continue
        if key not in indexes:
            raise InvalidInput(f"'{key}' is not an indexed field; indexed: {sorted(indexes) or 'none'}")
        kind = indexes[key]
        if op in _RANGE:
            if kind not in ("integer", "float"):
                raise InvalidInput(f"'{op}' needs a numeric field; '{key}' is {kind}")
            must.append({"key": key, "range": {_RANGE[op]: float(coerce(raw, "float"))}})
        elif op in ("in", "not in"):
            values = [coerce(v, kind) for v in str(raw).split(",") if v.strip()]
            (must if op == "in" else must_not).append({"key": key, "match": {"any": values}})
        elif op in ("=", "!="):
            (must if op == "=" else must_not).append({"key": key, "match": coerce(raw, kind)})
        else:
            raise InvalidInput(f"unknown operator '{op}'")
    if not must and not must_not:
        return None
    result: dict[str, Any] = {}
    if must:
        result["must"] = must
    if must_not:
        result["must_not"] = must_not
    return result


def parse_indexes(text: str) -> dict[str, FieldType]:
    """``"year:integer, kind:keyword"`` -> ``{"year": "integer", "kind": "keyword"}``."""
    result: dict[str, FieldType] = {}
    for part in re.split(r"[,\s]+", text.strip()):
        if not part:
            continue
        name, _, kind = part.partition(":")
        kind = kind or "keyword"
        if not name or kind not in INDEX_TYPES:
            raise InvalidInput(
                f"payload index '{part}': write FIELD:TYPE with TYPE one of {', '.join(INDEX_TYPES)}"
            )
        result[name] = kind  # type: ignore[assignment]
    return result
