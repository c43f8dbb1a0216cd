"""The dashboard's pure helpers: filters, uploaded files, progress, highlighting (no stack needed)."""

from __future__ import annotations

import gzip
import json
import sys
from datetime import UTC, datetime, timedelta

import pytest

from counterpoint.errors import Forbidden, InvalidInput, NotFound, Unauthorized, Unavailable
from counterpoint.schemas import Filter, JobInfo
from counterpoint.ui import common


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
    built = common.build_filter(rows, indexes)
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
    assert common.build_filter([("year", "=", "")], indexes) is None


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
        common.build_filter([row], {"year": "integer", "kind": "keyword", "ok": "bool"})


def test_parse_indexes() -> None:
    assert common.parse_indexes("year:integer, kind:keyword tag") == {
        "year": "integer",
        "kind": "keyword",
        "tag": "keyword",
    }
    assert common.parse_indexes("  ") == {}
    with pytest.raises(InvalidInput, match="FIELD:TYPE"):
        common.parse_indexes("year:date")


def test_parse_documents_jsonl_csv_and_gzip() -> None:
    lines = [
        {"_id": "d1", "title": "T", "text": "one", "year": 2020},
        {"id": "d2", "text": "two", "metadata": {"kind": "x"}},
    ]
    data = "\n".join(json.dumps(x) for x in lines).encode() + b"\n\n"
    docs = common.parse_documents("docs.jsonl", data)
    assert docs == [
        {"id": "d1", "title": "T", "text": "one", "metadata": {"year": 2020}},
        {"id": "d2", "text": "two", "metadata": {"kind": "x"}},
    ]
    assert common.parse_documents("docs.jsonl.gz", gzip.compress(data)) == docs

    csv = b"\xef\xbb\xbfid,title,text,year,kind\n1,A,alpha,2019,x\n2,,beta,,y\n"
    docs = common.parse_documents("docs.csv", csv, {"year": "integer"})
    assert docs == [
        {"id": "1", "text": "alpha", "title": "A", "metadata": {"year": 2019, "kind": "x"}},
        {"id": "2", "text": "beta", "metadata": {"kind": "y"}},
    ]
    with pytest.raises(InvalidInput, match="needs columns id and text"):
        common.parse_documents("docs.csv", b"name,body\nx,y\n")
    with pytest.raises(InvalidInput, match="line 2 is not valid JSON"):
        common.parse_documents("docs.jsonl", b'{"id": 1, "text": "a"}\n{oops\n')
    with pytest.raises(InvalidInput, match="needs 'id' and 'text'"):
        common.parse_documents("docs.jsonl", b'{"title": "no text"}\n')


def test_parse_queries_and_qrels() -> None:
    assert common.parse_queries("q.jsonl", b'{"_id": "q1", "text": "hello"}\n') == {"q1": "hello"}
    assert common.parse_queries("q.tsv", b"id\ttext\nq1\thello\nq2\tworld\n") == {
        "q1": "hello",
        "q2": "world",
    }
    qrels = b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n"
    assert common.parse_qrels("qrels.tsv", qrels) == {"q1": {"d1": 1, "d2": 0}}
    assert common.parse_qrels("qrels.tsv.gz", gzip.compress(qrels)) == {"q1": {"d1": 1, "d2": 0}}
    with pytest.raises(InvalidInput, match="qrels.tsv: expected a 'query-id"):
        common.parse_qrels("qrels.tsv", b"q\td\ts\n")


def test_highlight_escapes_html_and_marks_terms() -> None:
    terms = common.query_terms("What is the effect of Vitamin D on <bones>?")
    assert "the" not in terms and "vitamin" in terms and "bones" in terms
    out = common.highlight("Vitamin D & <b>bones</b> vitamins", terms)
    assert out == "<mark>Vitamin</mark> D &amp; &lt;b&gt;<mark>bones</mark>&lt;/b&gt; <mark>vitamins</mark>"
    assert common.highlight("a < b", []) == "a &lt; b"


def _job(**fields: object) -> JobInfo:
    base = {"id": "j", "name": "n", "kind": "train-biencoder", "status": "running", "config": {}}
    return JobInfo.model_validate({**base, **fields})


def test_job_progress_and_eta() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    job = _job(metrics={"step": 25, "total_steps": 100}, created_at=now - timedelta(seconds=50))
    assert common.job_progress(job, now) == (0.25, 150.0)
    job = _job(metrics={"step": 5}, config={"max_steps": 10}, created_at=now - timedelta(seconds=10))
    assert common.job_progress(job, now) == (0.5, 10.0)
    assert common.job_progress(_job(metrics={"step": 5}), now) == (None, None)
    assert common.job_progress(_job(status="succeeded"), now) == (1.0, 0.0)
    done = _job(status="failed", metrics={"step": 3, "total_steps": 10}, created_at=now)
    assert common.job_progress(done, now) == (0.3, None)


def test_formatting_and_error_text() -> None:
    assert common.fmt_duration(75) == "1m 15s"
    assert common.fmt_duration(3700) == "1h 01m"
    assert common.fmt_duration(None) == "—"
    assert common.fmt_number(1234) == "1,234" and common.fmt_number(0.000123456) == "0.0001235"
    assert common.badge("ok") == ":green-badge[:material/check_circle: ok]"
    assert common.error_text(NotFound("no collection 'x'")) == "not found (404): no collection 'x'"
    assert "is not reachable" in common.error_text(Unavailable("down"))
    assert "COUNTERPOINT_API_KEY" in common.error_text(Unauthorized("invalid API key"))
    assert "keys create" in common.error_text(Forbidden("needs 'write'"))
    assert common.error_text(RuntimeError("boom\nline two")) == "RuntimeError: boom"


def test_templates_are_the_examples() -> None:
    found = common.templates()
    assert found, "no job templates in examples/"
    for title, config in found.items():
        assert title.endswith(".yaml)") and "data" in config
        assert common.validate_config(config) is None, title
    assert "batch_size" in (common.validate_config({"data": {"path": "x.jsonl"}, "batch_size": 1}) or "")


def test_optional_packages_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The slim UI image may lack the training package, PyYAML or mlflow: pages degrade, not crash."""
    monkeypatch.setitem(sys.modules, "counterpoint.workers.config", None)
    assert common.validate_config({"batch_size": 1}) is None  # the gateway validates instead
    monkeypatch.setitem(sys.modules, "yaml", None)
    assert common.templates() == {}
    monkeypatch.setitem(sys.modules, "mlflow", None)
    common._mlflow.clear()
    try:
        assert common._mlflow("http://127.0.0.1:9") is None
    finally:
        common._mlflow.clear()
