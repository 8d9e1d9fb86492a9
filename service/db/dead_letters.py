"""Dead outbox messages as the console's admin page lists them (never their payload)."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from service.db.connection import Connection
from service.states import OutboxKind, OutboxStatus

# The admin page lists the newest dead messages; older ones remain for `outbox list --status`.
DEAD_LISTING_LIMIT = 500


class DeadMessage(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    kind: OutboxKind
    topic: str
    attempts: int
    last_error: str | None
    created_at: datetime
    # False once retention or an erasure removed what it would say: it cannot be sent again.
    retriable: bool


async def dead_messages(connection: Connection) -> list[DeadMessage]:
    rows = await connection.fetch(
        """
        select id, kind, topic, attempts, last_error, created_at,
               (payload is not null or payload_enc is not null) as retriable
        from outbox where status = 'dead' order by created_at desc limit $1
        """,
        DEAD_LISTING_LIMIT,
    )
    return [msgspec.convert(dict(row), DeadMessage) for row in rows]


async def message_state(
    connection: Connection, item_id: uuid.UUID
) -> tuple[OutboxStatus, bool] | None:
    """A message's status and whether it still has its payload; None when there is none."""
    row = await connection.fetchrow(
        """
        select status, (payload is not null or payload_enc is not null) as has_payload
        from outbox where id = $1
        """,
        item_id,
    )
    return (OutboxStatus(row["status"]), bool(row["has_payload"])) if row else None
