"""The shipped data copies are complete and byte-identical to the release; the loaders read them right."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from counterpoint.data import DATA_DIR, FILES, write_gzip_copies
from counterpoint.datasets import (
    BeirDataset,
    StsPair,
    default_scifact,
    default_scifact_dir,
    default_stsb_dir,
    iter_corpus,
    load_beir,
    load_qrels,
    load_sts,
    open_text,
    passage_text,
    to_ingest_document,
)
from counterpoint.schemas import Document

# sha256 of the uncompressed release files, as published in the data sets' README (shared/data/README.md).
EXPECTED_SHA256 = {
    "stsb/train.tsv": "b90ea8cabda0ad1cb454b6112068b490c8104348122162a126b36cda2a834867",
    "stsb/dev.tsv": "d1194bccc3a8942e4063145ff83eb58c3d3672c38463eb48cf6467217a59059c",
    "stsb/test.tsv": "e9862dca6bdd1853f7dff33757899b48a29dd1738934facc6d15acf2fb504ad4",
    "scifact/corpus.jsonl": "a9139fa5a407c9593ff23acf27681fabcdb2f9892b2c6709a414ef712e08e219",
    "scifact/queries.jsonl": "154a75771a103d599b0fdeda71cc75f7eef24a414de06967d72b5bbb07df8e8a",
    "scifact/qrels/train.tsv": "ac0902d9b1cb717df182aaff1306175877fdb8f55bb5c3e8597ad694fc8e539f",
    "scifact/qrels/test.tsv": "68c0ac63f1c24b9e8ce497649694f09b2d0850bab7ec2b103cc66996f5f8b3a3",
}


@pytest.fixture(scope="module")
def scifact() -> BeirDataset:
    return default_scifact()


# --- shipped files -----------------------------------------------------------------------------


def test_every_release_file_is_shipped() -> None:
    assert set(FILES) == set(EXPECTED_SHA256)


@pytest.mark.parametrize("rel", sorted(EXPECTED_SHA256))
def test_shipped_copy_decompresses_to_the_published_sha256(rel: str) -> None:
    raw = (DATA_DIR / f"{rel}.gz").read_bytes()
    assert hashlib.sha256(gzip.decompress(raw)).hexdigest() == EXPECTED_SHA256[rel]


@pytest.mark.parametrize("rel", sorted(EXPECTED_SHA256))
def test_shipped_copy_has_a_deterministic_gzip_header(rel: str) -> None:
    header = (DATA_DIR / f"{rel}.gz").read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] == 0, "no FNAME/FEXTRA/FCOMMENT: the bytes must not depend on where they were built"
    assert header[4:8] == b"\0\0\0\0", "mtime must be 0"


def test_data_readme_lists_the_checksums() -> None:
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    for digest in EXPECTED_SHA256.values():
        assert digest in readme


def test_write_gzip_copies_is_reproducible(tmp_path: Path) -> None:
    source = tmp_path / "source"
    for rel in FILES:
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(gzip.decompress((DATA_DIR / f"{rel}.gz").read_bytes()))
    first = [p.read_bytes() for p in write_gzip_copies(source, tmp_path / "a")]
    second = [p.read_bytes() for p in write_gzip_copies(source, tmp_path / "b")]
    assert first == second
    assert [gzip.decompress(b) for b in first] == [(source / rel).read_bytes() for rel in FILES]


# --- SciFact -----------------------------------------------------------------------------------


def test_scifact_counts(scifact: BeirDataset) -> None:
    assert scifact.path == default_scifact_dir()
    assert len(scifact.corpus) == 5183
    assert len(scifact.queries) == 1109
    assert scifact.splits() == ["test", "train"]
    test = scifact.qrels("test")
    assert (sum(len(d) for d in test.values()), len(test)) == (339, 300)
    assert scifact.qrels() == test  # the default split
    train = scifact.qrels("train")
    assert (sum(len(d) for d in train.values()), len(train)) == (919, 809)


def test_scifact_is_consistent(scifact: BeirDataset) -> None:
    for split in ("train", "test"):
        qrels = scifact.qrels(split)
        assert set(qrels) <= set(scifact.queries)
        assert all(doc in scifact.corpus for docs in qrels.values() for doc in docs)
        assert {grade for docs in qrels.values() for grade in docs.values()} == {1}
    assert not set(scifact.qrels("train")) & set(scifact.qrels("test"))
    assert list(scifact.split_queries("test")) == list(scifact.qrels("test"))
    doc = scifact.corpus["4983"]
    assert doc["title"].startswith("Microstructural development of human newborn cerebral white matter")
    assert set(doc) == {"title", "text"}


def test_iter_corpus_streams_the_documents_in_file_order() -> None:
    docs = iter_corpus(default_scifact_dir())
    first = next(docs)
    assert first["_id"] == "4983" and set(first) == {"_id", "title", "text"}
    assert 1 + sum(1 for _ in docs) == 5183


def test_to_ingest_document_matches_the_api_shape() -> None:
    doc = next(iter_corpus(default_scifact_dir() / "corpus.jsonl.gz"))
    ingest = to_ingest_document(doc)
    assert ingest == {"id": "4983", "title": doc["title"], "text": doc["text"]}
    assert Document(**ingest).id == "4983"  # validates against the ingest request schema


def test_passage_text_joins_title_and_text_like_beir() -> None:
    assert passage_text("A title.", "Some text.") == "A title. Some text."
    assert passage_text("", " Only text. ") == "Only text."


def test_plain_and_gzip_files_load_the_same(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    (plain / "qrels").mkdir(parents=True)
    (plain / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "T", "text": "x"})
        + "\n"
        + json.dumps({"_id": 2, "text": "y"})
        + "\n"
    )
    (plain / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "what?"}) + "\n\n")
    (plain / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\t2\t0\n")
    zipped = tmp_path / "zipped"
    for rel in ("corpus.jsonl", "queries.jsonl", "qrels/dev.tsv"):
        (zipped / rel).parent.mkdir(parents=True, exist_ok=True)
        (zipped / f"{rel}.gz").write_bytes(gzip.compress((plain / rel).read_bytes(), mtime=0))

    a, b = load_beir(plain), load_beir(zipped)
    assert a.corpus == b.corpus == {"d1": {"title": "T", "text": "x"}, "2": {"title": "", "text": "y"}}
    assert a.queries == b.queries == {"q1": "what?"}
    assert a.qrels("dev") == b.qrels("dev") == {"q1": {"d1": 2, "2": 0}}
    assert a.splits() == b.splits() == ["dev"]
    with open_text(zipped / "queries.jsonl") as handle:  # the plain name resolves to the .gz sibling
        assert handle.readline().startswith('{"_id": "q1"')


def test_loaders_reject_malformed_input(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_qrels(tmp_path / "missing.tsv")
    with pytest.raises(NotADirectoryError):
        load_beir(tmp_path / "missing")
    bad = tmp_path / "bad.tsv"
    bad.write_text("query-id\tcorpus-id\tscore\nq1\td1\n")
    with pytest.raises(ValueError, match="2 columns"):
        load_qrels(bad)
    bad.write_text("s1\ts2\tlabel\n")
    with pytest.raises(ValueError, match="header"):
        load_sts(bad)


# --- STS-B -------------------------------------------------------------------------------------


def test_stsb_counts_and_scores() -> None:
    root = default_stsb_dir()
    sizes = {split: len(load_sts(root / f"{split}.tsv.gz")) for split in ("train", "dev", "test")}
    assert sizes == {"train": 5749, "dev": 1500, "test": 1379}
    train = load_sts(root / "train.tsv")  # the .gz sibling is found
    assert train[0] == StsPair("A plane is taking off.", "An air plane is taking off.", 5.0)
    assert all(0.0 <= pair.score <= 5.0 and pair.s1 and pair.s2 for pair in train)


def test_stsb_keeps_quotes_verbatim() -> None:
    # A sentence that starts with an unbalanced quote: the default csv dialect would merge lines here.
    train = load_sts(default_stsb_dir() / "train.tsv.gz")
    assert train[2001] == StsPair('"Then the captain was gone.', "Then the captain came back.", 0.8)


def test_plain_stsb_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    with gzip.open(default_stsb_dir() / "dev.tsv.gz", "rb") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    assert load_sts(path) == load_sts(default_stsb_dir() / "dev.tsv.gz")
