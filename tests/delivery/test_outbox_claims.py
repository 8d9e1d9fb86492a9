"""Outbox claims: each claim has its own id and lease, and a claimer whose lease ran out can
neither mark the message sent nor failed once another claimer (or an operator's retry) took
it over.

Real PostgreSQL and a real SMTP server; time moves only through the ManualClock.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from service.clock import ManualClock
from service.db import outbox as outbox_table
from service.delivery import outbox
from service.worker import Worker
from tests.support.dates import SECOND, birth_date_years_ago
from tests.support.flows import create_request
from tests.support.stored_data import email_row

SUBJECT = "child-race-1"
GUARDIAN = "race.parent@example.com"
# The lease of the claims these tests make by hand, as a replica would.
LEASE = timedelta(seconds=30)


# ---- claim ownership -------------------------------------------------------------------------


async def test_a_stale_claimer_cannot_mark_a_reclaimed_message(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    request_id = await create_request(
        client,
        auth,
        subject_id="child-claims",
        email="claims@example.com",
        birth_date=birth_date_years_ago(clock),
    )
    [first] = await outbox_table.claim_due(db, now=clock.now(), limit=10, lease=LEASE)
    assert first.related_id == request_id
    assert await outbox_table.claim_due(db, now=clock.now(), limit=10, lease=LEASE) == []  # leased

    clock.advance(LEASE + timedelta(seconds=1))
    [second] = await outbox_table.claim_due(db, now=clock.now(), limit=10, lease=LEASE)
    assert second.id == first.id
    assert second.attempts == first.attempts + 1

    # The first claimer wakes up late: neither its success nor its failure may count.
    await outbox_table.mark_sent(db, first, clock.now())
    row = await email_row(db, request_id)
    assert row["status"] == "pending"
    assert row["payload_enc"] is not None
    assert row["attempts"] == second.attempts
    await outbox.mark_failed(db, first, error="Stale", now=clock.now(), max_attempts=1)
    row = await email_row(db, request_id)
    assert row["status"] == "pending"
    assert row["last_error"] is None

    await outbox_table.mark_sent(db, second, clock.now())
    row = await email_row(db, request_id)
    assert row["status"] == "sent"
    assert row["payload_enc"] is None


# ---- claim ids -------------------------------------------------------------------------------


async def _claim_id(db: asyncpg.Connection, item_id: uuid.UUID) -> uuid.UUID | None:
    value: uuid.UUID | None = await db.fetchval(
        "select claim_id from outbox where id = $1", item_id
    )
    return value


async def test_each_claim_has_its_own_id_and_a_stale_claimer_cannot_touch_a_retried_message(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    await create_request(
        client, auth, subject_id=SUBJECT, email=GUARDIAN, birth_date=birth_date_years_ago(clock)
    )
    [first] = await outbox_table.claim_due(db, now=clock.now(), limit=10, lease=LEASE)
    assert await _claim_id(db, first.id) == first.claim_id

    clock.advance(LEASE + SECOND)  # the first claimer's lease ran out
    [second] = await outbox_table.claim_due(db, now=clock.now(), limit=10, lease=LEASE)
    assert second.id == first.id
    assert second.claim_id != first.claim_id
    assert await _claim_id(db, first.id) == second.claim_id

    # The second claimer gives up on it; an operator puts it back in the queue.
    state = await outbox.mark_failed(
        db, second, error="SMTPServerDisconnected", now=clock.now(), max_attempts=second.attempts
    )
    assert state == "dead"
    assert await db.fetchval("select status from outbox where id = $1", first.id) == "dead"
    assert await outbox_table.requeue_dead(db, first.id, clock.now()) == "guardian_request"
    assert await _claim_id(db, first.id) is None

    # Both earlier claimers wake up late: neither a success nor a failure may count.
    for stale in (first, second):
        await outbox_table.mark_sent(db, stale, clock.now())
        await outbox.mark_failed(db, stale, error="Stale", now=clock.now(), max_attempts=1)
    row = await db.fetchrow("select * from outbox where id = $1", first.id)
    assert row is not None
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 0, None)
    assert row["payload_enc"] is not None
    assert row["sent_at"] is None
    assert mailbox.to(GUARDIAN) == []

    assert await worker.deliver_due() == 1
    assert len(mailbox.to(GUARDIAN)) == 1
    delivered = await db.fetchrow("select * from outbox where id = $1", first.id)
    assert delivered is not None
    assert (delivered["status"], delivered["attempts"]) == ("sent", 1)
    assert delivered["claim_id"] not in (None, first.claim_id, second.claim_id)
