"""The ``outbox`` table: inserting messages, claiming due ones, recording their outcome.

What a message says and when to try it again is decided by ``service.delivery.outbox``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from service.db.connection import Connection
from service.states import OutboxKind, OutboxStatus


class OutboxItem(msgspec.Struct, frozen=True, kw_only=True):
    """A message claimed for delivery; ``claim_id`` proves the claim is still ours."""

    id: uuid.UUID
    kind: OutboxKind
    topic: str
    subject_id: str | None
    related_id: uuid.UUID | None
    payload: dict[str, Any] | None
    payload_enc: bytes | None
    attempts: int
    claim_id: uuid.UUID
    created_at: datetime


class OutboxListing(msgspec.Struct, frozen=True, kw_only=True):
    """A message as ``outbox list`` shows it (never its payload)."""

    id: uuid.UUID
    kind: OutboxKind
    topic: str
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


async def insert_email(
    connection: Connection,
    *,
    item_id: uuid.UUID,
    topic: str,
    subject_id: str | None,
    related_id: uuid.UUID,
    payload_enc: bytes,
    next_attempt_at: datetime,
    created_at: datetime,
    scrub_when_done: bool = False,
) -> None:
    await connection.execute(
        """
        insert into outbox (id, kind, topic, subject_id, related_id, payload_enc,
                            next_attempt_at, created_at, scrub_when_done)
        values ($1, 'email', $2, $3, $4, $5, $6, $7, $8)
        """,
        item_id,
        topic,
        subject_id,
        related_id,
        payload_enc,
        next_attempt_at,
        created_at,
        scrub_when_done,
    )


async def insert_webhook(
    connection: Connection,
    *,
    item_id: uuid.UUID,
    topic: str,
    subject_id: str,
    related_id: uuid.UUID,
    payload: dict[str, Any],
    created_at: datetime,
    scrub_when_done: bool = False,
) -> None:
    await connection.execute(
        """
        insert into outbox (id, kind, topic, subject_id, related_id, payload,
                            next_attempt_at, created_at, scrub_when_done)
        values ($1, 'webhook', $2, $3, $4, $5::jsonb, $6, $6, $7)
        """,
        item_id,
        topic,
        subject_id,
        related_id,
        json.dumps(payload),
        created_at,
        scrub_when_done,
    )


async def claim_due(
    connection: Connection,
    *,
    now: datetime,
    limit: int,
    lease: timedelta,
    sent: Sequence[OutboxItem] = (),
) -> list[OutboxItem]:
    """Claim up to ``limit`` due messages that no other worker holds, for ``lease``; first,
    in the same statement (one round trip per batch, not one per message), record the
    messages of ``sent`` as sent, as ``mark_sent`` does."""
    rows = await connection.fetch(
        """
        with sent as (
            update outbox o
            set status = 'sent', sent_at = $1, payload = null, payload_enc = null,
                last_error = null,
                subject_id = case when o.scrub_when_done then null else o.subject_id end
            from unnest($4::uuid[], $5::uuid[]) as done (id, claim_id)
            where o.id = done.id and o.status = 'pending' and o.claim_id = done.claim_id
        ),
        due as (
            -- never a row the statement marks sent (one statement must not change a row twice)
            select id from outbox
            where status = 'pending' and next_attempt_at <= $1 and id <> all($4::uuid[])
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
        lease,
        [item.id for item in sent],
        [item.claim_id for item in sent],
    )
    items = []
    for row in rows:
        values = dict(row)
        if values["payload"] is not None:
            values["payload"] = json.loads(values["payload"])
        items.append(msgspec.convert(values, OutboxItem))
    return items


async def renew_claims(
    connection: Connection, items: list[OutboxItem], *, until: datetime
) -> set[uuid.UUID]:
    """Extend the lease of each claim still ours (same claim id, not finished) to ``until``;
    the ids of the messages renewed."""
    rows = await connection.fetch(
        """
        update outbox o set next_attempt_at = $3
        from unnest($1::uuid[], $2::uuid[]) as held (id, claim_id)
        where o.id = held.id and o.claim_id = held.claim_id and o.status = 'pending'
        returning o.id
        """,
        [item.id for item in items],
        [item.claim_id for item in items],
        until,
    )
    return {row["id"] for row in rows}


async def mark_sent(connection: Connection, item: OutboxItem, now: datetime) -> None:
    # The payload has done its job; keep no copy of the guardian's address or link, nor the
    # subject id of an erased subject. Only our own claim: a worker whose lease ran out must
    # not touch the row any more.
    await connection.execute(
        """
        update outbox set status = 'sent', sent_at = $2, payload = null, payload_enc = null,
                          last_error = null,
                          subject_id = case when scrub_when_done then null else subject_id end
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
    dead: bool,
    next_attempt_at: datetime,
) -> OutboxStatus | None:
    """Record a failed attempt; the new status, or None when our claim was taken over."""
    # A dead message about an erased subject keeps nothing personal (and cannot be retried).
    status: str | None = await connection.fetchval(
        """
        update outbox set status = case when $3 then 'dead' else 'pending' end,
                          next_attempt_at = $4, last_error = $2,
                          payload = case when $3 and scrub_when_done then null else payload end,
                          payload_enc = case when $3 and scrub_when_done then null
                                             else payload_enc end,
                          subject_id = case when $3 and scrub_when_done then null
                                            else subject_id end
        where id = $1 and status = 'pending' and claim_id = $5
        returning status
        """,
        item.id,
        error,
        dead,
        next_attempt_at,
        item.claim_id,
    )
    return OutboxStatus(status) if status is not None else None


async def requeue_dead(connection: Connection, item_id: uuid.UUID, now: datetime) -> str | None:
    """Make a dead message that still has its payload pending again, keeping its id (the
    webhook-id receivers dedupe on); its topic, or None."""
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


async def drop_undelivered_payloads(connection: Connection, before: datetime) -> int:
    """Null the payloads of dead and cancelled messages created before ``before``; how many."""
    result = await connection.execute(
        """
        update outbox set payload = null, payload_enc = null
        where status in ('dead', 'cancelled') and created_at < $1
          and (payload is not null or payload_enc is not null)
        """,
        before,
    )
    return int(result.split()[-1])


async def scrub_subject(connection: Connection, subject_id: str) -> None:
    """The subject's personal data is being erased: finished messages lose their subject id
    (and any payload left), pending ones will lose it once they are finished."""
    await connection.execute(
        """
        update outbox set subject_id = null, payload = null, payload_enc = null
        where subject_id = $1 and status <> 'pending'
        """,
        subject_id,
    )
    await connection.execute(
        "update outbox set scrub_when_done = true where subject_id = $1 and status = 'pending'",
        subject_id,
    )


async def scrub_related(connection: Connection, related_ids: list[uuid.UUID]) -> None:
    """``scrub_subject`` for the messages about some records (purged ones)."""
    await connection.execute(
        """
        update outbox set subject_id = null, payload = null, payload_enc = null
        where related_id = any($1::uuid[]) and status <> 'pending'
          and (subject_id is not null or payload is not null or payload_enc is not null)
        """,
        related_ids,
    )
    await connection.execute(
        """
        update outbox set scrub_when_done = true
        where related_id = any($1::uuid[]) and status = 'pending'
        """,
        related_ids,
    )


async def cancel_emails_for(connection: Connection, related_id: uuid.UUID) -> None:
    """Cancel the pending and dead emails about one record, dropping their payloads: they would
    now tell the guardian something stale. Webhooks are never cancelled: the main app must hear
    of every change, in order."""
    await connection.execute(
        """
        update outbox set status = 'cancelled', payload = null, payload_enc = null,
                          subject_id = case when scrub_when_done then null else subject_id end
        where related_id = $1 and kind = 'email' and status in ('pending', 'dead')
        """,
        related_id,
    )


async def list_messages(
    connection: Connection, statuses: list[OutboxStatus]
) -> list[OutboxListing]:
    rows = await connection.fetch(
        """
        select id, kind, topic, status, attempts, next_attempt_at, last_error
        from outbox where status = any($1::text[]) order by created_at
        """,
        statuses,
    )
    return [msgspec.convert(dict(row), OutboxListing) for row in rows]


class EmailOrigin(msgspec.Struct, frozen=True, kw_only=True):
    """The consent request an email belongs to (through its consent when it is about one)."""

    id: uuid.UUID
    subject_id: str | None
    request_id: uuid.UUID | None


async def email_origins(
    connection: Connection, ids: list[uuid.UUID]
) -> dict[uuid.UUID, EmailOrigin]:
    rows = await connection.fetch(
        """
        select o.id, o.subject_id, coalesce(c.request_id, o.related_id) as request_id
        from outbox o left join consents c on c.id = o.related_id
        where o.id = any($1::uuid[]) and o.kind = 'email'
        """,
        ids,
    )
    origins = [msgspec.convert(dict(row), EmailOrigin) for row in rows]
    return {origin.id: origin for origin in origins}
