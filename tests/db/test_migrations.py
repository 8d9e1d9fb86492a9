"""Migrations (`schemas/`) and the invariants the schema itself enforces."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from service.db.audit_events import record_event
from service.db.migrate import MigrationError, migrate
from service.settings import REPOSITORY_SCHEMAS_DIR
from tests.support.cli import run_cli

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"

TABLES = {
    "api_keys",
    "signing_keys",
    "consent_requests",
    "consents",
    "audit_events",
    "outbox",
    "idempotency_keys",
    "rate_limit_counters",
    "schema_migrations",
}


def schema_files() -> dict[str, str]:
    """File name → SHA-256 of every migration shipped in the repository."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(SCHEMAS.glob("*.sql"))
    }


async def fetch(dsn: str, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetch(query)
    finally:
        await connection.close()


def test_the_default_schema_directory_is_the_repository_one() -> None:
    assert REPOSITORY_SCHEMAS_DIR.resolve() == SCHEMAS
    assert schema_files(), "schemas/ holds at least one migration"


async def test_fresh_database_gets_every_migration_recorded(empty_database_url: str) -> None:
    files = schema_files()

    applied = await migrate(empty_database_url, REPOSITORY_SCHEMAS_DIR)

    assert applied == list(files)  # in file-name order
    tables = await fetch(
        empty_database_url,
        "select table_name from information_schema.tables where table_schema = 'public'",
    )
    assert {row["table_name"] for row in tables} >= TABLES
    recorded = await fetch(
        empty_database_url, "select version, name, checksum from schema_migrations order by 1"
    )
    assert {row["name"]: row["checksum"] for row in recorded} == files
    assert [row["version"] for row in recorded] == [name[:4] for name in files]


async def test_second_run_is_a_no_op(empty_database_url: str) -> None:
    await migrate(empty_database_url, REPOSITORY_SCHEMAS_DIR)
    before = await fetch(empty_database_url, "select version, applied_at from schema_migrations")

    assert await migrate(empty_database_url, REPOSITORY_SCHEMAS_DIR) == []

    after = await fetch(empty_database_url, "select version, applied_at from schema_migrations")
    assert sorted(map(tuple, after)) == sorted(map(tuple, before))


async def test_changed_applied_file_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, directory)
    assert await migrate(empty_database_url, directory=directory)
    first = sorted(directory.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after it was applied\n")

    with pytest.raises(MigrationError, match=re.escape(first.name)) as raised:
        await migrate(empty_database_url, directory=directory)
    assert "changed" in str(raised.value)


async def test_new_file_after_the_applied_ones_is_applied(
    empty_database_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, directory)
    await migrate(empty_database_url, directory=directory)
    (directory / "9000_extra_table.sql").write_text("create table extra_table (id int);\n")

    assert await migrate(empty_database_url, directory=directory) == ["9000_extra_table.sql"]
    rows = await fetch(empty_database_url, "select to_regclass('extra_table') is not null as x")
    assert rows[0]["x"] is True


async def test_unknown_recorded_migration_is_refused(empty_database_url: str) -> None:
    await migrate(empty_database_url, REPOSITORY_SCHEMAS_DIR)
    connection = await asyncpg.connect(empty_database_url)
    try:
        await connection.execute(
            "insert into schema_migrations (version, name, checksum) "
            "values ('9999', '9999_from_the_future.sql', 'abc')"
        )
    finally:
        await connection.close()

    with pytest.raises(MigrationError, match=re.escape("9999_from_the_future.sql")):
        await migrate(empty_database_url, REPOSITORY_SCHEMAS_DIR)


async def test_concurrent_runs_apply_once(empty_database_url: str) -> None:
    results = await asyncio.gather(
        migrate(empty_database_url, REPOSITORY_SCHEMAS_DIR),
        migrate(empty_database_url, REPOSITORY_SCHEMAS_DIR),
    )

    assert sorted(results) == [[], list(schema_files())]
    rows = await fetch(empty_database_url, "select count(*) as n from schema_migrations")
    assert rows[0]["n"] == len(schema_files())


async def test_badly_named_file_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    for name in ("1_init.sql", "0002-more.sql", "0002_More.sql"):
        directory = tmp_path / name.replace(".", "-")
        shutil.copytree(SCHEMAS, directory)
        (directory / name).write_text("select 1;\n")

        with pytest.raises(MigrationError, match=re.escape(name)):
            await migrate(empty_database_url, directory=directory)
    rows = await fetch(empty_database_url, "select to_regclass('schema_migrations') as t")
    assert rows[0]["t"] is None, "nothing was applied"


async def test_two_files_with_one_version_are_refused(
    empty_database_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, directory)
    (directory / "0001_duplicate.sql").write_text("select 1;\n")

    with pytest.raises(MigrationError, match="version"):
        await migrate(empty_database_url, directory=directory)


async def test_failing_file_applies_nothing(empty_database_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, directory)
    (directory / "9000_broken.sql").write_text("create table half (id int);\nnot sql at all;\n")

    with pytest.raises(MigrationError, match=re.escape("9000_broken.sql")):
        await migrate(empty_database_url, directory=directory)
    rows = await fetch(
        empty_database_url,
        "select to_regclass('schema_migrations') as t, to_regclass('api_keys') as k",
    )
    assert (rows[0]["t"], rows[0]["k"]) == (None, None), "one transaction: all or nothing"


async def test_migrate_command(empty_database_url: str, tmp_path: Path) -> None:
    # run from elsewhere: the schema directory does not depend on the working directory
    first = await run_cli("migrate", database_url=empty_database_url, cwd=tmp_path)
    assert first.code == 0, first.stderr
    assert first.stdout.strip() == f"applied {', '.join(schema_files())}"

    second = await run_cli("migrate", database_url=empty_database_url, cwd=tmp_path)
    assert second.code == 0, second.stderr
    assert second.stdout.strip() == "database schema is current"


# ---- invariants held by the schema ------------------------------------------------------------


async def insert_request(
    db: asyncpg.Connection, subject_id: str, *, status: str = "pending"
) -> uuid.UUID:
    request_id = uuid.uuid4()
    now = datetime.now(UTC)
    pending = status == "pending"
    await db.execute(
        """
        insert into consent_requests (
            id, subject_id, status, country, age_of_consent, basis, birth_date,
            consent_required_until, guardian_email_enc, guardian_email_hash, guardian_ref,
            purposes, locale, policy_version, link_token_hash, created_at, expires_at,
            decided_at, updated_at
        ) values ($1, $2, $3, 'SI', 15, 'test', $4, $5, $6, $7, 'g-ref', $8, 'en', 'v1', $9,
                  $10, $11, $12, $10)
        """,
        request_id,
        subject_id,
        status,
        date(2015, 1, 1) if pending else None,
        date(2030, 1, 1),
        os.urandom(32),
        os.urandom(32),
        ["tutoring"],
        os.urandom(32),
        now,
        now + timedelta(days=7),
        None if pending else now,
    )
    return request_id


async def insert_consent(db: asyncpg.Connection, request_id: uuid.UUID, status: str) -> None:
    now = datetime.now(UTC)
    await db.execute(
        """
        insert into consents (
            id, request_id, subject_id, status, purposes, jurisdiction, method, policy_version,
            guardian_ref, granted_at, expires_at, ended_at, updated_at
        ) values ($1, $2, 'child-1', $3, $4, 'SI', 'email_plus', 'v1', 'g-ref', $5, $6, $7, $5)
        """,
        uuid.uuid4(),
        request_id,
        status,
        ["tutoring"],
        now,
        now + timedelta(days=365),
        None if status == "granted" else now,
    )


async def test_one_pending_request_per_subject(db: asyncpg.Connection) -> None:
    await insert_request(db, "child-1")
    await insert_request(db, "child-2")  # another subject is fine
    await insert_request(db, "child-1", status="cancelled")  # a decided one is fine

    with pytest.raises(asyncpg.UniqueViolationError, match="one_pending_per_subject"):
        await insert_request(db, "child-1")
    assert await db.fetchval("select count(*) from consent_requests where subject_id = 'child-1'")


async def test_request_status_outside_the_list_is_rejected(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await insert_request(db, "child-1", status="approved")
    assert await db.fetchval("select count(*) from consent_requests") == 0


async def test_consent_status_outside_the_list_is_rejected(db: asyncpg.Connection) -> None:
    request_id = await insert_request(db, "child-1", status="granted")
    with pytest.raises(asyncpg.CheckViolationError):
        await insert_consent(db, request_id, "maybe")
    assert await db.fetchval("select count(*) from consents") == 0

    await insert_consent(db, request_id, "granted")  # the same row with a listed status is fine
    assert await db.fetchval("select status from consents") == "granted"


async def test_audit_events_are_append_only(db: asyncpg.Connection) -> None:
    async with db.transaction():
        await record_event(db, actor="test", action="test.recorded", occurred_at=datetime.now(UTC))
    event_id = await db.fetchval("select id from audit_events")

    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await db.execute("update audit_events set action = 'forged' where id = $1", event_id)
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await db.execute("delete from audit_events where id = $1", event_id)
    # the erasure escape hatch does not allow changing the non-personal content
    transaction = db.transaction()
    await transaction.start()
    await db.execute("set local consent.redaction = 'on'")
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await db.execute(
            "update audit_events set action = 'forged', redacted = true where id = $1", event_id
        )
    await transaction.rollback()

    assert await db.fetchval("select action from audit_events where id = $1", event_id) == (
        "test.recorded"
    )
