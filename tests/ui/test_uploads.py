"""Uploaded files: documents (JSONL, CSV, gzip), queries and qrels."""

from __future__ import annotations

import gzip
import json

import pytest

from counterpoint.errors import InvalidInput
from counterpoint.ui import uploads


def test_parse_documents_jsonl_csv_and_gzip() -> None:
    lines = [
        {"_id": "d1", "title": "T", "text": "one", "year": 2020},
        {"id": "d2", "text": "two", "metadata": {"kind": "x"}},
    ]
    data = "\n".join(json.dumps(x) for x in lines).encode() + b"\n\n"
    docs = uploads.parse_documents("docs.jsonl", data)
    assert docs == [
        {"id": "d1", "title": "T", "text": "one", "metadata": {"year": 2020}},
        {"id": "d2", "text": "two", "metadata": {"kind": "x"}},
    ]
    assert uploads.parse_documents("docs.jsonl.gz", gzip.compress(data)) == docs

    csv = b"\xef\xbb\xbfid,title,text,year,kind\n1,A,alpha,2019,x\n2,,beta,,y\n"
    docs = uploads.parse_documents("docs.csv", csv, {"year": "integer"})
    assert docs == [
        {"id": "1", "text": "alpha", "title": "A", "metadata": {"year": 2019, "kind": "x"}},
        {"id": "2", "text": "beta", "metadata": {"kind": "y"}},
    ]
    with pytest.raises(InvalidInput, match="needs columns id and text"):
        uploads.parse_documents("docs.csv", b"name,body\nx,y\n")
    with pytest.raises(InvalidInput, match="line 2 is not valid JSON"):
        uploads.parse_documents("docs.jsonl", b'{"id": 1, "text": "a"}\n{oops\n')
    with pytest.raises(InvalidInput, match="needs 'id' and 'text'"):
        uploads.parse_documents("docs.jsonl", b'{"title": "no text"}\n')


def test_parse_queries_and_qrels() -> None:
    assert uploads.parse_queries("q.jsonl", b'{"_id": "q1", "text": "hello"}\n') == {"q1": "hello"}
    assert uploads.parse_queries("q.tsv", b"id\ttext\nq1\thello\nq2\tworld\n") == {
        "q1": "hello",
        "q2": "world",
    }
    qrels = b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n"
    assert uploads.parse_qrels("qrels.tsv", qrels) == {"q1": {"d1": 1, "d2": 0}}
    assert uploads.parse_qrels("qrels.tsv.gz", gzip.compress(qrels)) == {"q1": {"d1": 1, "d2": 0}}
    with pytest.raises(InvalidInput, match="qrels.tsv: expected a 'query-id"):
        uploads.parse_qrels("qrels.tsv", b"q\td\ts\n")
