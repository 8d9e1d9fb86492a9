"""The support console's sessions (``console_sessions``): found by the hash of the cookie's id."""

from __future__ import annotations

from datetime import datetime

import msgspec

from service.db.connection import Connection


class ConsoleSession(msgspec.Struct, frozen=True, kw_only=True):
    id_hash: bytes
    staff_sub: str
    staff_name: str | None
    roles: list[str]
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ended_at: datetime | None


async def insert(
    connection: Connection,
    *,
    id_hash: bytes,
    staff_sub: str,
    staff_name: str | None,
    roles: list[str],
    now: datetime,
    expires_at: datetime,
) -> None:
    await connection.execute(
        """
        insert into console_sessions (
            id_hash, staff_sub, staff_name, roles, created_at, last_seen_at, expires_at
        ) values ($1, $2, $3, $4, $5, $5, $6)
        """,
        id_hash,
        staff_sub,
        staff_name,
        roles,
        now,
        expires_at,
    )


async def find(connection: Connection, id_hash: bytes) -> ConsoleSession | None:
    row = await connection.fetchrow(
        """
        select id_hash, staff_sub, staff_name, roles, created_at, last_seen_at, expires_at,
               ended_at
        from console_sessions where id_hash = $1
        """,
        id_hash,
    )
    return msgspec.convert(dict(row), ConsoleSession) if row else None


async def touch(connection: Connection, id_hash: bytes, now: datetime) -> None:
    await connection.execute(
        "update console_sessions set last_seen_at = greatest(last_seen_at, $2) "
        "where id_hash = $1 and ended_at is null",
        id_hash,
        now,
    )


async def end(connection: Connection, id_hash: bytes, now: datetime) -> bool:
    """End a live session; False when it had already ended (or never existed)."""
    ended = await connection.fetchval(
        "update console_sessions set ended_at = $2 where id_hash = $1 and ended_at is null "
        "returning true",
        id_hash,
        now,
    )
    return bool(ended)


async def delete_finished(connection: Connection, before: datetime) -> int:
    """Forget sessions that ended, or reached their absolute end, before ``before``."""
    deleted = await connection.fetchval(
        """
        with gone as (
            delete from console_sessions
            where coalesce(ended_at, expires_at) < $1 or expires_at < $1
            returning 1
        ) select count(*) from gone
        """,
        before,
    )
    return int(deleted)


async def delete_unusable(connection: Connection, now: datetime, idle_since: datetime) -> int:
    """Forget every session that can no longer be used: ended, past its absolute end, or
    unused since ``idle_since`` (idle for longer than the idle timeout)."""
    deleted = await connection.fetchval(
        """
        with gone as (
            delete from console_sessions
            where ended_at is not null or expires_at <= $1 or last_seen_at <= $2
            returning 1
        ) select count(*) from gone
        """,
        now,
        idle_since,
    )
    return int(deleted)
