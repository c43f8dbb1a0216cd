"""The search page's text-box readers: filters, payload index specs, highlighting."""

from __future__ import annotations

import pytest

from counterpoint.errors import InvalidInput
from counterpoint.schemas import Filter
from counterpoint.ui import search_inputs


def test_build_filter_makes_a_valid_qdrant_filter() -> None:
    indexes = {"year": "integer", "kind": "keyword", "score": "float", "ok": "bool"}
    rows = [
        ("year", ">=", "2020"),
        ("kind", "in", "review, study"),
        ("kind", "!=", "retracted"),
        ("ok", "=", "true"),
        ("score", "<", "0.5"),
        ("year", "=", " "),  # empty values are ignored
    ]
    built = search_inputs.build_filter(rows, indexes)
    assert built == {
        "must": [
            {"key": "year", "range": {"gte": 2020.0}},
            {"key": "kind", "match": {"any": ["review", "study"]}},
            {"key": "ok", "match": True},
            {"key": "score", "range": {"lt": 0.5}},
        ],
        "must_not": [{"key": "kind", "match": "retracted"}],
    }
    Filter.model_validate(built)
    assert search_inputs.build_filter([("year", "=", "")], indexes) is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("year", "=", "soon"), "not a valid integer"),
        (("kind", ">", "a"), "needs a numeric field"),
        (("colour", "=", "red"), "not an indexed field"),
        (("ok", "=", "maybe"), "not true or false"),
    ],
)
def test_build_filter_rejects_bad_rows(row: tuple[str, str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        search_inputs.build_filter([row], {"year": "integer", "kind": "keyword", "ok": "bool"})


def test_parse_indexes() -> None:
    assert search_inputs.parse_indexes("year:integer, kind:keyword tag") == {
        "year": "integer",
        "kind": "keyword",
        "tag": "keyword",
    }
    assert search_inputs.parse_indexes("  ") == {}
    with pytest.raises(InvalidInput, match="FIELD:TYPE"):
        search_inputs.parse_indexes("year:date")


def test_highlight_escapes_html_and_marks_terms() -> None:
    terms = search_inputs.query_terms("What is the effect of Vitamin D on <bones>?")
    assert "the" not in terms and "vitamin" in terms and "bones" in terms
    out = search_inputs.highlight("Vitamin D & <b>bones</b> vitamins", terms)
    assert out == "<mark>Vitamin</mark> D &amp; &lt;b&gt;<mark>bones</mark>&lt;/b&gt; <mark>vitamins</mark>"
    assert search_inputs.highlight("a < b", []) == "a &lt; b"
