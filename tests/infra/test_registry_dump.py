"""The registry's logical dump: taken on one engine, loaded into an empty database of either engine,
rows equal; a database that is not empty, or a dump that is not one, is refused and nothing is written."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, make_url

from counterpoint.errors import Conflict, InvalidInput
from counterpoint.infra.db import Registry, make_engine
from counterpoint.infra.db.dump import dump_registry, load_registry


def fill(registry: Registry) -> None:
    """A row of every kind, with the awkward values: nested JSON, NULLs, a revoked key, non-ASCII text."""
    registry.create_collection(
        "papers", model="models:/tiny/2", dimensions=48, payload_indexes={"year": "integer", "kind": "keyword"},
        physical_name="papers-1a2b3c4d",
    )  # fmt: skip
    registry.create_collection("notes", model="tiny", dimensions=32, distance="dot", status="failed")
    job = registry.create_job("train", {"loss": {"name": "mnrl"}, "lr": 2e-5, "dims": [64, 32]}, name="run ✓")
    registry.update_job(
        job.id, status="failed", ray_job_id="raysubmit_1", error="boom\nline 2", metrics={"step": 3}
    )
    registry.create_job("reindex", {"collection": "papers"})
    registry.register_model("tiny", "/models/tiny", dimensions=32)
    registry.register_model("reranker", "models:/rr/1", kind="cross-encoder")
    key = registry.create_api_key(
        "ui", prefix="a1b2c3", key_hash="$argon2id$v=19$hash", scopes=["read", "write"]
    )
    registry.revoke_api_key(key.id)
    registry.create_api_key("ci", prefix="d4e5f6", key_hash="$argon2id$v=19$other", scopes=["admin"])


def snapshot(registry: Registry) -> tuple[Any, ...]:
    return (
        registry.list_collections(),
        sorted(registry.list_jobs(), key=lambda j: j.id),
        registry.list_models(),
        registry.list_api_keys(),
    )


@pytest.fixture()
def source(tmp_path: Path) -> Iterator[Registry]:
    with Registry.from_url(f"sqlite:///{tmp_path / 'source.db'}") as registry:
        fill(registry)
        yield registry


def test_a_dump_restores_into_an_empty_database_of_either_engine(source: Registry, db_url: str) -> None:
    dump = json.loads(json.dumps(dump_registry(source.engine)))  # what travels is JSON
    assert dump["source_dialect"] == "sqlite" and dump["schema_revision"] == "0002"
    counts = load_registry(db_url, dump)
    assert counts == {"api_keys": 2, "collections": 2, "mirrored_writes": 0, "jobs": 2, "models": 2}
    with Registry.from_url(db_url) as restored:
        assert snapshot(restored) == snapshot(source)
        again = dump_registry(restored.engine)
        assert again["tables"] == dump["tables"]
        # New rows after a restore get fresh ids (PostgreSQL's sequences were moved past the restored ones).
        restored.create_collection("after", model="tiny", dimensions=32)
        restored.register_model("after", "/models/after")
        ids = [row["id"] for row in dump_registry(restored.engine)["tables"]["collections"]]
        assert len(set(ids)) == 3


@pytest.mark.postgres
def test_a_postgresql_dump_restores_into_sqlite(source: Registry, postgres_url: str, tmp_path: Path) -> None:
    server = make_url(postgres_url)
    name = f"dump_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        pg_url = server.set(database=name).render_as_string(hide_password=False)
        load_registry(pg_url, dump_registry(source.engine))
        with Registry.from_url(pg_url) as pg:
            dump = json.loads(json.dumps(dump_registry(pg.engine)))
        assert dump["source_dialect"] == "postgresql"
        target = f"sqlite:///{tmp_path / 'back.db'}"
        load_registry(target, dump)
        with Registry.from_url(target) as back:
            assert snapshot(back) == snapshot(source)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_a_database_with_rows_is_refused_and_kept(source: Registry, db_url: str) -> None:
    dump = dump_registry(source.engine)
    with Registry.from_url(db_url) as target:
        target.create_collection("mine", model="tiny", dimensions=32)
        before = snapshot(target)
        with pytest.raises(Conflict, match="not empty \\(1 collections\\)"):
            load_registry(db_url, dump)
        assert snapshot(target) == before


def _bad(dump: dict[str, Any], change: str) -> Any:
    bad = copy.deepcopy(dump)
    collections = bad["tables"]["collections"]
    if change == "format":
        bad["format"] = "pg_dump"
    elif change == "version":
        bad["format_version"] = 99
    elif change == "revision":
        bad["schema_revision"] = "9999"
    elif change == "table":
        bad["tables"]["widgets"] = []
    elif change == "column":
        collections[0]["colour"] = "red"
    elif change == "missing":
        del collections[0]["model"]
    elif change == "naive":
        collections[0]["created_at"] = datetime(2026, 1, 1).isoformat()
    elif change == "timestamp":
        collections[0]["created_at"] = "yesterday"
    elif change == "duplicate":  # passes every check; the database's unique constraint refuses it
        collections.append({**collections[0], "id": 99})
    return bad


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("format", "not a Counterpoint registry dump"),
        ("version", "format version 99"),
        ("revision", "revision '9999', which this release does not know"),
        ("table", "tables this schema does not know: \\['widgets'\\]"),
        ("column", "collections\\[0\\] has columns this schema does not know: \\['colour'\\]"),
        ("missing", "collections\\[0\\] lacks \\['model'\\]"),
        ("naive", "has no time zone"),
        ("timestamp", "not an ISO timestamp"),
        ("duplicate", "nothing was written"),
    ],
)
def test_bad_dumps_are_refused_and_write_nothing(
    source: Registry, tmp_path: Path, change: str, message: str
) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    with pytest.raises(InvalidInput, match=message):
        load_registry(target, _bad(dump_registry(source.engine), change))
    engine = make_engine(target)
    try:
        assert inspect(engine).get_table_names() == []  # not even the schema: the migration rolled back
    finally:
        engine.dispose()
    with pytest.raises(InvalidInput, match="not a Counterpoint registry dump"):
        load_registry(target, ["not", "a", "dump"])


def test_timestamps_stay_aware_utc(source: Registry, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    load_registry(target, json.loads(json.dumps(dump_registry(source.engine))))
    with Registry.from_url(target) as restored:
        revoked = [k for k in restored.list_api_keys() if k.revoked_at is not None]
        assert len(revoked) == 1 and revoked[0].revoked_at.tzinfo == UTC  # type: ignore[union-attr]
