"""Restrictions of processing (GDPR Art. 18): one row per restricted subject."""

from __future__ import annotations

from datetime import datetime

import msgspec

from service.db.connection import Connection


class Restriction(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    reason: str
    restricted_by: str
    restricted_at: datetime


_COLUMNS = "subject_id, reason, restricted_by, restricted_at"


async def get_restriction(connection: Connection, subject_id: str) -> Restriction | None:
    row = await connection.fetchrow(
        f"select {_COLUMNS} from subject_restrictions where subject_id = $1", subject_id
    )
    return msgspec.convert(dict(row), Restriction) if row else None


async def insert_restriction(
    connection: Connection, *, subject_id: str, reason: str, restricted_by: str, now: datetime
) -> Restriction | None:
    """The new restriction, or None when the subject is restricted already."""
    row = await connection.fetchrow(
        f"""
        insert into subject_restrictions (subject_id, reason, restricted_by, restricted_at)
        values ($1, $2, $3, $4)
        on conflict (subject_id) do nothing
        returning {_COLUMNS}
        """,
        subject_id,
        reason,
        restricted_by,
        now,
    )
    return msgspec.convert(dict(row), Restriction) if row else None


async def delete_restriction(connection: Connection, subject_id: str) -> Restriction | None:
    """The lifted restriction, or None when there was none."""
    row = await connection.fetchrow(
        f"delete from subject_restrictions where subject_id = $1 returning {_COLUMNS}",
        subject_id,
    )
    return msgspec.convert(dict(row), Restriction) if row else None


async def subject_is_known(connection: Connection, subject_id: str) -> bool:
    """Whether anything is stored about the subject that a restriction could restrict."""
    known: bool = await connection.fetchval(
        """
        select exists (select 1 from consent_requests where subject_id = $1)
            or exists (select 1 from consents where subject_id = $1)
        """,
        subject_id,
    )
    return known
