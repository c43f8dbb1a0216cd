"""The SDK's readers of precomputed-vector files (JSONL, .npy + payloads JSONL, Parquet) and the one-pass
check that names the first bad line or row, on real files in a temporary folder (no gateway)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from counterpoint.client.vector_files import check_vector_file, open_vector_file
from counterpoint.errors import InvalidInput

DIMS = 4


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIMS)).astype(np.float32)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def jsonl_rows(n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"p{i}", "vector": v.tolist(), "text": f"text {i}", "metadata": {"year": 2000 + i}}
        for i, v in enumerate(vectors(n))
    ]


def write_npy(tmp_path: Path, n: int, ids: list[str] | None = None) -> tuple[Path, Path]:
    matrix = tmp_path / "v.npy"
    np.save(matrix, vectors(n))
    lines = [{"id": i} for i in (ids or [f"r{k}" for k in range(n)])]
    return matrix, write_jsonl(tmp_path / "ids.jsonl", lines)


def write_parquet(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path, row_group_size=3)
    return path


def parquet_table(n: int, **extra: Any) -> pa.Table:
    columns: dict[str, Any] = {
        "id": [f"q{i}" for i in range(n)],
        "vector": pa.array(vectors(n).tolist(), type=pa.list_(pa.float32())),
    }
    return pa.table({**columns, **extra})


def read_all(
    path: Path, payloads: Path | None = None, size: int = 2
) -> tuple[list[str], np.ndarray, list[dict]]:
    file = open_vector_file(path, payloads)
    batches = list(file.batches(size, DIMS))
    ids = [i for b in batches for i in b.ids]
    return ids, np.concatenate([b.vectors for b in batches]), [p for b in batches for p in b.payloads]


def check(path: Path, payloads: Path | None = None, indexes: dict | None = None) -> int:
    return check_vector_file(open_vector_file(path, payloads), DIMS, indexes or {}, size=2)


def test_jsonl_reads_in_batches_with_payloads(tmp_path: Path) -> None:
    rows = jsonl_rows(5)
    rows[1] = {"_id": 7, "vector": rows[1]["vector"]}  # BEIR's _id, an integer id, no payload
    path = write_jsonl(tmp_path / "v.jsonl", rows)
    ids, matrix, payloads = read_all(path)
    assert ids == ["p0", "7", "p2", "p3", "p4"]
    np.testing.assert_allclose(matrix, vectors(5))
    assert payloads[0] == {"text": "text 0", "metadata": {"year": 2000}} and payloads[1] == {}
    assert check(path, indexes={"year": "integer"}) == 5


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"id": "x", "vector": [1, 2, 3]}', "line 3: vector has 3 dimensions; the collection has 4"),
        ('{"id": "x", "vector": [1, 2, 3, NaN]}', "line 3: vector 'x' contains NaN or infinity"),
        ('{"id": "x", "vector": [1, 2, 3, 1e39]}', "line 3: vector 'x' contains NaN or infinity"),
        ('{"id": "p0", "vector": [1, 2, 3, 4]}', "line 3: id 'p0' appears more than once"),
        ('{"id": "x", "vector": [1, 2, "a", 4]}', "line 3: 'vector' must hold numbers only"),
        ('{"id": "x", "vector": [1, 2, 3, 4], "vectr": 1}', "line 3: unknown field(s) ['vectr']"),
        ('{"id": "", "vector": [1, 2, 3, 4]}', "line 3: 'id' must not be empty"),
        ('{"id": "x", "vector": [1, 2, 3, 4], "metadata": {"year": "soon"}}', "line 3: metadata 'year' must be integer"),
        ('{"id": "x", "vector": [1, 2, 3, 4], "metadata": {"title": "t"}}', "line 3: metadata may not use reserved keys"),
        ('{"id": "x", "vector": [1, 2, 3', "line 3 is not valid JSON"),  # a truncated file
    ],
)  # fmt: skip
def test_jsonl_problems_name_their_line(tmp_path: Path, line: str, words: str) -> None:
    path = tmp_path / "v.jsonl"
    good = "".join(json.dumps(row) + "\n" for row in jsonl_rows(2))
    path.write_text(good + line + "\n")
    with pytest.raises(InvalidInput) as caught:
        check(path, indexes={"year": "integer"})
    assert words in caught.value.message and str(path) in caught.value.message


def test_npy_with_payload_lines(tmp_path: Path) -> None:
    matrix, ids = write_npy(tmp_path, 5)
    got, values, payloads = read_all(matrix, ids)
    assert got == [f"r{k}" for k in range(5)] and payloads == [{}] * 5
    np.testing.assert_allclose(values, vectors(5))
    assert check(matrix, ids) == 5


def test_npy_problems(tmp_path: Path) -> None:
    matrix, ids = write_npy(tmp_path, 5)
    with pytest.raises(InvalidInput, match="needs a payloads JSONL file"):
        open_vector_file(matrix)
    short = write_jsonl(tmp_path / "short.jsonl", [{"id": f"r{k}"} for k in range(4)])
    with pytest.raises(InvalidInput, match="has 4 lines for the 5 rows"):
        check(matrix, short)
    long = write_jsonl(tmp_path / "long.jsonl", [{"id": f"r{k}"} for k in range(7)])
    with pytest.raises(InvalidInput, match="has 7 lines for the 5 rows"):
        check(matrix, long)
    dup = write_jsonl(
        tmp_path / "dup.jsonl", [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "a"}, {"id": "e"}]
    )
    with pytest.raises(InvalidInput, match="row 4: id 'a' appears more than once"):
        check(matrix, dup)
    raw = matrix.read_bytes()
    matrix.write_bytes(raw[: len(raw) - 10])  # the last row cut short
    with pytest.raises(
        InvalidInput, match=r"is truncated: its header says 5 x 4 float32.*about 4 whole rows"
    ):
        open_vector_file(matrix, ids)
    np.save(matrix, np.arange(20).reshape(5, 4))
    with pytest.raises(InvalidInput, match="int64 array of shape \\(5, 4\\); expected a 2-D float array"):
        open_vector_file(matrix, ids)
    np.save(matrix, np.zeros((5, 3), np.float32))
    with pytest.raises(InvalidInput, match="vectors have 3 dimensions; the collection has 4"):
        check(matrix, ids)
    nan = vectors(5)
    nan[3, 1] = np.nan
    np.save(matrix, nan)
    with pytest.raises(InvalidInput, match="row 4: vector 'r3' contains NaN"):
        check(matrix, ids)


def test_parquet_columns_metadata_and_extras(tmp_path: Path) -> None:
    struct = pa.array([{"year": 2000 + i, "kind": "a"} for i in range(5)])
    path = write_parquet(
        tmp_path / "v.parquet",
        parquet_table(
            5, text=[f"t{i}" for i in range(5)], metadata=struct, lang=["en", None, "fr", "en", "de"]
        ),
    )
    ids, matrix, payloads = read_all(path)
    assert ids == [f"q{i}" for i in range(5)]
    np.testing.assert_allclose(matrix, vectors(5))
    assert payloads[0] == {"text": "t0", "metadata": {"year": 2000, "kind": "a", "lang": "en"}}
    assert payloads[1]["metadata"] == {"year": 2001, "kind": "a"}  # a null extra is left out
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(vectors(5).ravel()), DIMS)
    json_meta = [json.dumps({"year": 1999}), None, None, None, None]
    path2 = write_parquet(
        tmp_path / "f.parquet", pa.table({"id": list(range(5)), "vector": fixed, "metadata": json_meta})
    )
    ids2, matrix2, payloads2 = read_all(path2)
    assert ids2 == ["0", "1", "2", "3", "4"] and payloads2[0] == {"metadata": {"year": 1999}}
    np.testing.assert_allclose(matrix2, vectors(5))
    assert check(path2, indexes={"year": "integer"}) == 5


def test_parquet_problems(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "v.parquet", parquet_table(7))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # truncated: the footer is gone
    with pytest.raises(InvalidInput, match="is not a readable Parquet file"):
        open_vector_file(path)
    path.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(InvalidInput, match="is not a readable Parquet file"):
        open_vector_file(path)
    ragged = pa.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]], type=pa.list_(pa.float64()))
    write_parquet(path, pa.table({"id": ["a", "b"], "vector": ragged}))
    with pytest.raises(InvalidInput, match="row 2: vector has 2 dimensions"):
        check(path)
    write_parquet(path, pa.table({"id": ["a", "b"], "vector": pa.array([[1.0] * 4, None])}))
    with pytest.raises(InvalidInput, match="row 2: 'vector' is null"):
        check(path)
    write_parquet(
        path,
        pa.table({"id": ["a"], "vector": pa.array([[1.0] * 4]), "when": pa.array([1], pa.timestamp("s"))}),
    )
    with pytest.raises(InvalidInput, match="column 'when' has type timestamp"):
        open_vector_file(path)
    write_parquet(path, pa.table({"id": ["a"], "embedding": pa.array([[1.0] * 4])}))
    with pytest.raises(InvalidInput, match=r"no column \['vector'\]"):
        open_vector_file(path)
    write_parquet(path, parquet_table(3, metadata=["{", None, None]))
    with pytest.raises(InvalidInput, match="row 1: 'metadata' is not valid JSON"):
        check(path)
    write_parquet(path, parquet_table(5, id=["a", "b", "c", "d", "a"]))
    with pytest.raises(InvalidInput, match="row 5: id 'a' appears more than once"):
        check(path)


def test_a_payloads_file_only_goes_with_npy_and_missing_files_are_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "v.jsonl", jsonl_rows(2))
    with pytest.raises(InvalidInput, match="goes with a .npy file only"):
        open_vector_file(path, path)
    with pytest.raises(InvalidInput, match="no such file"):
        open_vector_file(tmp_path / "ghost.parquet")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InvalidInput, match="holds no vectors"):
        check(empty)
