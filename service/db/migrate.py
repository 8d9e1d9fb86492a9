"""Apply ``schemas/NNNN_name.sql`` files in order, once each, under an advisory lock.

Every file is recorded with a SHA-256 checksum; a recorded file whose content changed is
refused, because the database would silently differ from what the repository describes.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import asyncpg
import msgspec

from service.db.connection import Connection

MIGRATION_LOCK_KEY = 0x636F6E73656E74  # "consent": one lock id shared by every migrate process
_FILE_PATTERN = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


class MigrationError(Exception):
    pass


class Migration(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    name: str
    sql: str
    checksum: str


def load_migrations(directory: Path) -> list[Migration]:
    if not directory.is_dir():
        raise MigrationError(f"schema directory not found: {directory}")
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_PATTERN.fullmatch(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        sql = path.read_text(encoding="utf-8")
        migrations.append(
            Migration(
                version=match.group(1),
                name=path.name,
                sql=sql,
                checksum=hashlib.sha256(sql.encode()).hexdigest(),
            )
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return migrations


async def apply_migrations(connection: Connection, migrations: list[Migration]) -> list[str]:
    """Apply pending migrations in one transaction; return the names applied."""
    async with connection.transaction():
        await connection.execute("select pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await connection.execute(
            """
            create table if not exists schema_migrations (
                version text primary key,
                name text not null,
                checksum text not null,
                applied_at timestamptz not null default now()
            )
            """
        )
        applied = {
            row["version"]: row
            for row in await connection.fetch(
                "select version, name, checksum from schema_migrations"
            )
        }
        _check_applied(applied, migrations)
        newly_applied = []
        for migration in migrations:
            if migration.version in applied:
                continue
            try:
                await connection.execute(migration.sql)
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"{migration.name}: {exc}") from exc
            await connection.execute(
                "insert into schema_migrations (version, name, checksum) values ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            newly_applied.append(migration.name)
        return newly_applied


def _check_applied(applied: dict[str, asyncpg.Record], migrations: list[Migration]) -> None:
    known = {m.version: m for m in migrations}
    for version, row in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {row['name']} which is not in the schema directory"
            )
        if migration.checksum != row["checksum"]:
            raise MigrationError(
                f"{migration.name} was changed after it was applied "
                f"(recorded checksum {row['checksum'][:12]}, file {migration.checksum[:12]}); "
                "add a new migration file instead"
            )


async def migrate(dsn: str, directory: Path) -> list[str]:
    migrations = load_migrations(directory)
    connection = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(connection, migrations)
    finally:
        await connection.close()


async def pending_versions(connection: Connection, expected: list[str]) -> list[str]:
    """Versions the code expects that the database has not applied (empty when current)."""
    exists = await connection.fetchval("select to_regclass('schema_migrations') is not null")
    if not exists:
        return expected
    rows = await connection.fetch("select version from schema_migrations")
    applied = {row["version"] for row in rows}
    return [version for version in expected if version not in applied]
