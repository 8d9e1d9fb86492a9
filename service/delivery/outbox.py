"""The transactional outbox: side effects written with the state change, delivered later.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and leased: a worker that dies mid-send
leaves the row to be claimed again after the lease, so delivery is at least once.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec

from service.db.connection import Connection
from service.delivery.emails import RenderedEmail
from service.security.personal_data import DataProtector

CLAIM_LEASE = timedelta(minutes=2)
BASE_BACKOFF_SECONDS = 30
MAX_BACKOFF_SECONDS = 3600


class OutboxItem(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    kind: str
    topic: str
    subject_id: str | None
    related_id: uuid.UUID | None
    payload: dict[str, Any] | None
    payload_enc: bytes | None
    attempts: int
    claim_id: uuid.UUID
    created_at: datetime


class EmailPayload(msgspec.Struct, frozen=True, kw_only=True):
    to: str
    locale: str
    email: RenderedEmail


def backoff(attempts: int) -> timedelta:
    """Exponential backoff with jitter: 30 s, 60 s, 120 s, ... capped at one hour."""
    seconds = min(BASE_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


async def enqueue_email(
    connection: Connection,
    protector: DataProtector,
    *,
    topic: str,
    subject_id: str,
    related_id: uuid.UUID,
    to: str,
    locale: str,
    email: RenderedEmail,
    now: datetime,
    deliver_at: datetime | None = None,
) -> uuid.UUID:
    item_id = uuid.uuid4()
    payload = msgspec.json.encode(EmailPayload(to=to, locale=locale, email=email))
    await connection.execute(
        """
        insert into outbox (id, kind, topic, subject_id, related_id, payload_enc,
                            next_attempt_at, created_at)
        values ($1, 'email', $2, $3, $4, $5, $6, $7)
        """,
        item_id,
        topic,
        subject_id,
        related_id,
        protector.encrypt(payload, item_id.bytes),
        deliver_at or now,
        now,
    )
    return item_id


async def enqueue_webhook(
    connection: Connection,
    *,
    event_type: str,
    subject_id: str,
    related_id: uuid.UUID,
    data: dict[str, Any],
    now: datetime,
) -> uuid.UUID:
    item_id = uuid.uuid4()
    payload = {"type": event_type, "timestamp": now.isoformat(), "data": data}
    await connection.execute(
        """
        insert into outbox (id, kind, topic, subject_id, related_id, payload,
                            next_attempt_at, created_at)
        values ($1, 'webhook', $2, $3, $4, $5::jsonb, $6, $6)
        """,
        item_id,
        event_type,
        subject_id,
        related_id,
        json.dumps(payload),
        now,
    )
    return item_id


def decrypt_email(protector: DataProtector, item: OutboxItem) -> EmailPayload:
    assert item.payload_enc is not None
    return msgspec.json.decode(
        protector.decrypt(item.payload_enc, item.id.bytes), type=EmailPayload
    )


async def claim_due(connection: Connection, *, now: datetime, limit: int) -> list[OutboxItem]:
    rows = await connection.fetch(
        """
        with due as (
            select id from outbox
            where status = 'pending' and next_attempt_at <= $1
            order by next_attempt_at
            limit $2
            for update skip locked
        )
        update outbox o
        set attempts = o.attempts + 1, next_attempt_at = $1 + $3::interval,
            claim_id = gen_random_uuid()
        from due where o.id = due.id
        returning o.id, o.kind, o.topic, o.subject_id, o.related_id, o.payload, o.payload_enc,
                  o.attempts, o.claim_id, o.created_at
        """,
        now,
        limit,
        CLAIM_LEASE,
    )
    items = []
    for row in rows:
        values = dict(row)
        if values["payload"] is not None:
            values["payload"] = json.loads(values["payload"])
        items.append(msgspec.convert(values, OutboxItem))
    return items


async def mark_sent(connection: Connection, item: OutboxItem, now: datetime) -> None:
    # The payload has done its job; keep no copy of the guardian's address or link.
    # Only our own claim: a worker whose lease ran out must not touch the row any more.
    await connection.execute(
        """
        update outbox set status = 'sent', sent_at = $2, payload = null, payload_enc = null,
                          last_error = null
        where id = $1 and status = 'pending' and claim_id = $3
        """,
        item.id,
        now,
        item.claim_id,
    )


async def mark_failed(
    connection: Connection,
    item: OutboxItem,
    *,
    error: str,
    now: datetime,
    max_attempts: int,
) -> str:
    """Record a failed attempt; the new status, or ``stale`` when our claim was taken over."""
    dead = item.attempts >= max_attempts
    status: str | None = await connection.fetchval(
        """
        update outbox set status = case when $3 then 'dead' else 'pending' end,
                          next_attempt_at = $4, last_error = $2
        where id = $1 and status = 'pending' and claim_id = $5
        returning status
        """,
        item.id,
        error[:500],
        dead,
        now + backoff(item.attempts),
        item.claim_id,
    )
    return status or "stale"


async def retry_dead(connection: Connection, item_id: uuid.UUID, now: datetime) -> str | None:
    """Put a dead message back in the queue, keeping its id (the webhook-id receivers dedupe on)."""
    row = await connection.fetchrow(
        """
        update outbox set status = 'pending', attempts = 0, next_attempt_at = $2, last_error = null,
                          claim_id = null
        where id = $1 and status = 'dead' and (payload is not null or payload_enc is not null)
        returning topic
        """,
        item_id,
        now,
    )
    return str(row["topic"]) if row else None


async def purge_undelivered(connection: Connection, before: datetime) -> int:
    """Drop the payloads of messages given up on (dead, cancelled) before ``before``."""
    result = await connection.execute(
        """
        update outbox set payload = null, payload_enc = null
        where status in ('dead', 'cancelled') and created_at < $1
          and (payload is not null or payload_enc is not null)
        """,
        before,
    )
    return int(result.split()[-1])


async def cancel_emails_for(connection: Connection, related_id: uuid.UUID) -> None:
    """Drop undelivered emails about a record that would now tell the guardian something stale.

    Webhooks are never cancelled: the main app must hear of every change, in order.
    """
    await connection.execute(
        """
        update outbox set status = 'cancelled', payload = null, payload_enc = null
        where related_id = $1 and kind = 'email' and status in ('pending', 'dead')
        """,
        related_id,
    )
