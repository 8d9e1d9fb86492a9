"""SQL for the texts of the notices guardians were shown, one row per notice version."""

from __future__ import annotations

from datetime import datetime

import msgspec

from service.db.connection import Connection


class StoredNotice(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    label: str
    locale: str
    content_hash: str
    text: str
    first_used_at: datetime


async def remember(
    connection: Connection,
    *,
    version: str,
    label: str,
    locale: str,
    content_hash: str,
    text: str,
    now: datetime,
) -> None:
    """Keep a version's text the first time it is used; later uses (and racing first uses)
    change nothing."""
    await connection.execute(
        """
        insert into notice_versions (version, label, locale, content_hash, text, first_used_at)
        values ($1, $2, $3, $4, $5, $6)
        on conflict (version) do nothing
        """,
        version,
        label,
        locale,
        content_hash,
        text,
        now,
    )


async def find(connection: Connection, version: str) -> StoredNotice | None:
    row = await connection.fetchrow(
        """
        select version, label, locale, content_hash, text, first_used_at
        from notice_versions where version = $1
        """,
        version,
    )
    return msgspec.convert(dict(row), StoredNotice) if row else None


async def find_many(connection: Connection, versions: list[str]) -> list[StoredNotice]:
    rows = await connection.fetch(
        """
        select version, label, locale, content_hash, text, first_used_at
        from notice_versions where version = any($1::text[]) order by first_used_at, version
        """,
        versions,
    )
    return [msgspec.convert(dict(row), StoredNotice) for row in rows]
