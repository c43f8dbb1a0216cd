"""The registry database: migrations and the ``Registry`` repository.

Every test that takes ``db_url`` (or ``registry``) runs twice: against a SQLite file and
against a real PostgreSQL server (``postgres_url`` in tests/conftest.py), each time on a new,
empty database. ``-m "not postgres"`` keeps only the SQLite runs.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, make_url, text

from counterpoint.errors import Conflict, InvalidInput, NotFound
from counterpoint.infra.db import Registry, make_engine, migrate, normalize_url
from counterpoint.infra.db.engine import MIGRATIONS_DIR, alembic_config
from counterpoint.infra.db.models import Base, UTCDateTime

TABLES = {"collections", "mirrored_writes", "jobs", "models", "api_keys"}


@pytest.fixture
def registry(db_url: str) -> Iterator[Registry]:
    reg = Registry.from_url(db_url)
    try:
        yield reg
    finally:
        reg.close()


def _head() -> str | None:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def _current(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def _run_threads(count: int, target: Callable[[int], None]) -> list[BaseException]:
    """Run ``target(i)`` in ``count`` threads started together; return what they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # collected for the assertion in the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


# --- migrations -------------------------------------------------------------------------------


def test_migrate_creates_schema_and_is_idempotent(db_url: str) -> None:
    migrate(db_url)
    migrate(db_url)  # second call: nothing to do, no error
    assert _current(db_url) == _head() == "0002"
    engine = make_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        engine.dispose()


def test_migrations_match_models(db_url: str) -> None:
    """The migrated schema equals the models: a model change without a revision fails here."""
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diffs == [], f"models and migrations differ; write a new revision: {diffs}"


def test_downgrade_to_base_and_upgrade_again(db_url: str) -> None:
    """Goes through env.py's own-engine path (the alembic command line) as well."""
    migrate(db_url)
    config = alembic_config(db_url)
    command.downgrade(config, "base")
    engine = make_engine(db_url)
    try:
        assert not TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    command.upgrade(config, "head")
    assert _current(db_url) == _head()


def test_an_old_database_keeps_its_collections_through_the_upgrade(db_url: str) -> None:
    """0001 -> 0002 adds the re-index mirror columns to existing rows (no mirror) and its table."""
    config = alembic_config(db_url)
    command.upgrade(config, "0001")
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO collections (name, physical_name, model, dimensions, distance, "
                    "payload_indexes, status, created_at, updated_at) VALUES ('papers', 'papers', 'm', 32, "
                    "'cosine', '{}', 'ready', '2026-12-01 00:00:00', '2026-12-01 00:00:00')"
                )
            )
    finally:
        engine.dispose()
    migrate(db_url)
    with Registry.from_url(db_url) as registry:
        row = registry.get_collection("papers")
        assert (row.model, row.mirror_physical, row.mirror_model, row.reindexing) == ("m", None, None, False)


def test_concurrent_migrations_are_serialised(db_url: str) -> None:
    """Services starting together all call ``migrate``; exactly one applies the revision."""
    assert _run_threads(4, lambda _: migrate(db_url)) == []
    assert _current(db_url) == _head()


def test_migration_files_ship_with_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()


# --- engines and URLs -------------------------------------------------------------------------


def test_normalize_url_picks_psycopg3() -> None:
    assert normalize_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_sqlite_file_gets_parent_dir_wal_and_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "registry.db"
    reg = Registry.from_url(f"sqlite:///{path}")
    try:
        assert path.is_file()
        with reg.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        reg.close()


def test_in_memory_sqlite_works() -> None:
    reg = Registry.from_url("sqlite://")
    reg.create_collection("c", model="m", dimensions=4)
    assert [c.name for c in reg.list_collections()] == ["c"]
    reg.close()


@pytest.mark.postgres
def test_plain_postgresql_url_is_accepted(postgres_url: str) -> None:
    plain = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    reg = Registry.from_url(plain)
    try:
        assert reg.engine.dialect.driver == "psycopg"
        reg.list_collections()
    finally:
        reg.close()


def test_naive_datetimes_are_refused() -> None:
    decorator = UTCDateTime()
    dialect = create_engine("sqlite://").dialect
    with pytest.raises(ValueError, match="timezone-aware"):
        decorator.process_bind_param(datetime(2024, 1, 1), dialect)
    assert decorator.process_result_value(datetime(2024, 1, 1), dialect) == datetime(2024, 1, 1, tzinfo=UTC)


# --- collections ------------------------------------------------------------------------------


def test_collection_lifecycle(registry: Registry) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    created = registry.create_collection(
        "scifact", model="all-MiniLM-L6-v2", dimensions=384, payload_indexes={"year": "integer"}
    )
    assert created.physical_name == "scifact"
    assert created.status == "ready" and created.distance == "cosine"
    assert created.payload_indexes == {"year": "integer"}
    assert created.created_at.tzinfo is not None and created.created_at.utcoffset() == timedelta(0)
    assert before < created.created_at <= datetime.now(UTC) + timedelta(seconds=5)

    fetched = registry.get_collection("scifact")
    assert fetched == created

    registry.create_collection("arxiv", model="m", dimensions=8, distance="dot", physical_name="arxiv_v1")
    assert [c.name for c in registry.list_collections()] == ["arxiv", "scifact"]

    deleted = registry.delete_collection("scifact")
    assert deleted.name == "scifact"
    assert [c.name for c in registry.list_collections()] == ["arxiv"]
    with pytest.raises(NotFound, match="collection 'scifact' does not exist"):
        registry.get_collection("scifact")
    with pytest.raises(NotFound):
        registry.delete_collection("scifact")


def test_duplicate_collection_is_a_conflict(registry: Registry) -> None:
    registry.create_collection("docs", model="m", dimensions=4)
    with pytest.raises(Conflict, match="collection 'docs' already exists"):
        registry.create_collection("docs", model="other", dimensions=8)
    assert registry.get_collection("docs").model == "m"


def test_collection_status(registry: Registry) -> None:
    registry.create_collection("docs", model="m", dimensions=4, status="indexing")
    updated = registry.set_collection_status("docs", "ready")
    assert updated.status == "ready" == registry.get_collection("docs").status
    assert updated.updated_at >= updated.created_at
    with pytest.raises(InvalidInput):
        registry.set_collection_status("docs", "bogus")
    with pytest.raises(NotFound):
        registry.set_collection_status("missing", "ready")


def test_switch_model_is_one_compare_and_swap(registry: Registry) -> None:
    registry.create_collection("docs", model="m1", dimensions=4, physical_name="docs_v1")
    registry.start_mirror("docs", physical_name="docs_v2", model="models:/m/2")
    old = registry.switch_model(
        "docs", physical_name="docs_v2", model="models:/m/2", dimensions=8, expected="docs_v1"
    )
    row = registry.get_collection("docs")
    assert old == "docs_v1"
    assert (row.physical_name, row.model, row.dimensions, row.status) == (
        "docs_v2",
        "models:/m/2",
        8,
        "ready",
    )
    with pytest.raises(Conflict, match="not 'docs_v1'"):
        registry.switch_model("docs", physical_name="docs_v3", model="x", dimensions=2, expected="docs_v1")
    assert registry.get_collection("docs").physical_name == "docs_v2"


def test_a_reindex_mirror_lives_in_the_row_until_the_switch(registry: Registry) -> None:
    registry.create_collection("papers", model="old", dimensions=32, physical_name="papers-a")
    started = registry.start_mirror("papers", physical_name="papers-b", model="new")
    assert (started.status, started.mirror_physical, started.mirror_model) == (
        "reindexing",
        "papers-b",
        "new",
    )
    with pytest.raises(Conflict, match="already being re-indexed"):
        registry.start_mirror("papers", physical_name="papers-c", model="new")
    with registry.locked("papers") as locked:
        locked.mark_mirrored(["d1", "d2"])
        locked.mark_mirrored(["d2", "d3"])  # an id written twice is recorded once
    with registry.locked("papers") as locked:
        assert locked.mirrored(["d0", "d1", "d3"]) == {"d1", "d3"}
    with pytest.raises(Conflict, match="is being re-indexed; not replaced"):
        registry.replace_collection(
            "papers",
            physical_name="papers-r",
            model="old",
            dimensions=32,
            distance="cosine",
            payload_indexes={},
            expected="papers-a",
        )
    registry.switch_model("papers", physical_name="papers-b", model="new", dimensions=48, expected="papers-a")
    row = registry.get_collection("papers")
    assert (row.physical_name, row.model, row.status, row.reindexing) == ("papers-b", "new", "ready", False)
    registry.start_mirror("papers", physical_name="papers-b", model="newer")  # the same name again
    with registry.locked("papers") as locked:
        assert locked.mirrored(["d1", "d2", "d3"]) == set(), "the last re-index's ids were dropped"


def test_an_abandoned_mirror_cannot_switch(registry: Registry) -> None:
    registry.create_collection("papers", model="old", dimensions=32, physical_name="papers-a")
    registry.start_mirror("papers", physical_name="papers-b", model="new")
    with registry.locked("papers") as locked:
        locked.mark_mirrored(["d1"])
    registry.end_mirror("papers", "papers-b")
    row = registry.get_collection("papers")
    assert (row.status, row.reindexing) == ("ready", False)
    with pytest.raises(Conflict, match="no longer being re-indexed"):
        registry.switch_model(
            "papers", physical_name="papers-b", model="new", dimensions=48, expected="papers-a"
        )
    registry.end_mirror("gone", "gone-b")  # a collection deleted meanwhile: nothing to do


def test_swap_physical(registry: Registry) -> None:
    registry.create_collection("docs", model="m", dimensions=4, physical_name="docs_v1")
    assert registry.swap_physical("docs", "docs_v2") == "docs_v1"
    assert registry.get_collection("docs").physical_name == "docs_v2"
    # compare-and-swap: a stale expectation is refused and changes nothing
    with pytest.raises(Conflict):
        registry.swap_physical("docs", "docs_v3", expected="docs_v1")
    assert registry.get_collection("docs").physical_name == "docs_v2"
    assert registry.swap_physical("docs", "docs_v3", expected="docs_v2") == "docs_v2"
    with pytest.raises(NotFound):
        registry.swap_physical("missing", "x")


def test_concurrent_swaps_lose_nothing(db_url: str) -> None:
    """Writers on separate engines (like separate processes): every swap sees the previous one."""
    registries = [Registry.from_url(db_url) for _ in range(4)]
    try:
        registries[0].create_collection("docs", model="m", dimensions=4, physical_name="v0")
        olds: list[str] = []

        def swap(i: int) -> None:
            for round_ in range(5):
                olds.append(registries[i].swap_physical("docs", f"w{i}-{round_}"))

        assert _run_threads(4, swap) == []
        final = registries[0].get_collection("docs").physical_name
        # one unbroken chain: every name but the final one was replaced exactly once
        names = {"v0"} | {f"w{i}-{r}" for i in range(4) for r in range(5)}
        assert len(olds) == len(set(olds)) == 20
        assert set(olds) | {final} == names and final not in olds
    finally:
        for reg in registries:
            reg.close()


# --- jobs -------------------------------------------------------------------------------------


def test_job_lifecycle(registry: Registry) -> None:
    job = registry.create_job("train-biencoder", {"epochs": 1, "lr": 2e-5}, name="tune")
    assert job.status == "pending" and not job.finished
    assert job.config == {"epochs": 1, "lr": 2e-5}
    assert job.metrics == {} and job.error is None and job.ray_job_id is None
    uuid.UUID(job.id)

    running = registry.update_job(job.id, status="running", ray_job_id="raysubmit_1", mlflow_run_id="abc")
    assert (running.status, running.ray_job_id, running.mlflow_run_id) == ("running", "raysubmit_1", "abc")
    assert running.updated_at >= job.updated_at

    with_metrics = registry.update_job(job.id, metrics={"loss": 0.5, "step": 10})
    assert with_metrics.metrics == {"loss": 0.5, "step": 10}
    assert with_metrics.ray_job_id == "raysubmit_1"  # untouched fields stay

    done = registry.update_job(job.id, status="succeeded", metrics={"loss": 0.1})
    assert done.finished and done.metrics == {"loss": 0.1}
    assert registry.get_job(job.id) == done


def test_job_update_can_clear_fields(registry: Registry) -> None:
    job = registry.create_job("index")
    registry.update_job(job.id, error="boom", ray_job_id="r")
    cleared = registry.update_job(job.id, error=None)
    assert cleared.error is None and cleared.ray_job_id == "r"


def test_finished_job_keeps_its_status(registry: Registry) -> None:
    job = registry.create_job("train-biencoder")
    registry.update_job(job.id, status="failed", error="out of memory")
    with pytest.raises(Conflict, match="already failed"):
        registry.update_job(job.id, status="cancelled")
    same = registry.update_job(job.id, status="failed", metrics={"step": 3})  # same status: fine
    assert same.status == "failed" and same.error == "out of memory"


def test_only_failed_or_cancelled_jobs_reopen(registry: Registry) -> None:
    job = registry.create_job("train-biencoder")
    with pytest.raises(Conflict, match="only a failed or cancelled job"):
        registry.reopen_job(job.id)
    registry.update_job(job.id, status="failed", error="worker died")
    reopened = registry.reopen_job(job.id)
    assert (reopened.status, reopened.error) == ("pending", None)
    registry.update_job(job.id, status="succeeded")
    with pytest.raises(Conflict, match="succeeded"):
        registry.reopen_job(job.id)
    with pytest.raises(NotFound):
        registry.reopen_job("nope")


def test_job_errors(registry: Registry) -> None:
    with pytest.raises(NotFound, match="job 'nope' does not exist"):
        registry.get_job("nope")
    with pytest.raises(NotFound):
        registry.update_job("nope", status="running")
    job = registry.create_job("index")
    with pytest.raises(InvalidInput):
        registry.update_job(job.id, status="exploded")
    with pytest.raises(InvalidInput):
        registry.create_job("index", status="exploded")
    with pytest.raises(Conflict):
        registry.create_job("index", job_id=job.id)


def test_list_jobs_newest_first_with_filters(registry: Registry) -> None:
    first = registry.create_job("train-biencoder")
    second = registry.create_job("index")
    third = registry.create_job("train-biencoder")
    registry.update_job(second.id, status="running")

    assert [j.id for j in registry.list_jobs()] == [third.id, second.id, first.id]
    assert [j.id for j in registry.list_jobs(kind="train-biencoder")] == [third.id, first.id]
    assert [j.id for j in registry.list_jobs(status="running")] == [second.id]
    assert [j.id for j in registry.list_jobs(status=["pending", "running"], limit=2)] == [third.id, second.id]
    assert registry.list_jobs(status="succeeded") == []


def test_concurrent_job_writers(db_url: str) -> None:
    """Several writers (separate engines) creating and updating jobs never hit 'database is locked'."""
    registries = [Registry.from_url(db_url) for _ in range(4)]
    try:

        def work(i: int) -> None:
            for step in range(10):
                job = registries[i].create_job("train-biencoder", {"worker": i})
                registries[i].update_job(job.id, status="running", metrics={"step": step})

        assert _run_threads(4, work) == []
        jobs = registries[0].list_jobs()
        assert len(jobs) == 40 and {j.status for j in jobs} == {"running"}
    finally:
        for reg in registries:
            reg.close()


# --- models -----------------------------------------------------------------------------------


def test_models(registry: Registry) -> None:
    minilm = registry.register_model("all-MiniLM-L6-v2", "/models/minilm", dimensions=384)
    assert (minilm.kind, minilm.dimensions) == ("embedding", 384)
    registry.register_model("rerank", "models:/rerank@champion", kind="cross-encoder")
    assert registry.get_model("rerank").uri == "models:/rerank@champion"
    assert registry.get_model("rerank").dimensions is None
    assert [m.name for m in registry.list_models()] == ["all-MiniLM-L6-v2", "rerank"]
    assert [m.name for m in registry.list_models(kind="cross-encoder")] == ["rerank"]

    with pytest.raises(Conflict, match="already registered"):
        registry.register_model("rerank", "elsewhere", kind="cross-encoder")
    with pytest.raises(NotFound, match="model 'nope' is not registered"):
        registry.get_model("nope")
    with pytest.raises(InvalidInput):
        registry.register_model("odd", "/x", kind="diffusion")


# --- API keys ---------------------------------------------------------------------------------


def test_api_keys(registry: Registry) -> None:
    key = registry.create_api_key("ci", prefix="cp_abc123", key_hash="sha256$deadbeef", scopes=["search"])
    assert key.active and key.scopes == ["search"] and key.revoked_at is None
    assert "deadbeef" not in repr(key)
    assert registry.get_api_key_by_prefix("cp_abc123") == key

    other = registry.create_api_key("admin", prefix="cp_xyz789", key_hash="h2", scopes=["admin", "search"])
    assert [k.prefix for k in registry.list_api_keys()] == ["cp_abc123", "cp_xyz789"]

    revoked = registry.revoke_api_key(key.id)
    assert not revoked.active and revoked.revoked_at is not None
    assert revoked.revoked_at.utcoffset() == timedelta(0)
    assert registry.revoke_api_key(key.id).revoked_at == revoked.revoked_at  # idempotent
    assert not registry.get_api_key_by_prefix("cp_abc123").active
    assert [k.id for k in registry.list_api_keys(include_revoked=False)] == [other.id]

    with pytest.raises(Conflict):
        registry.create_api_key("dup", prefix="cp_abc123", key_hash="h3")
    with pytest.raises(NotFound):
        registry.get_api_key_by_prefix("cp_missing")
    with pytest.raises(NotFound):
        registry.revoke_api_key(str(uuid.uuid4()))


# --- records ----------------------------------------------------------------------------------


def test_records_are_detached_and_frozen(db_url: str) -> None:
    reg = Registry.from_url(db_url)
    collection = reg.create_collection("docs", model="m", dimensions=4, payload_indexes={"a": "keyword"})
    job = reg.create_job("index", {"nested": {"k": [1, 2]}})
    reg.close()  # no connection left: records must not need one
    assert collection.payload_indexes == {"a": "keyword"}
    assert job.config == {"nested": {"k": [1, 2]}}
    with pytest.raises(FrozenInstanceError):
        collection.status = "failed"  # type: ignore[misc]
    # mutating a returned dict does not write through to the database
    job.config["nested"] = "changed"
    reopened = Registry.from_url(db_url)
    try:
        assert reopened.get_job(job.id).config == {"nested": {"k": [1, 2]}}
    finally:
        reopened.close()
