"""A batch's messages are recorded as sent by the statement that claims the next batch: only
those still under our claim, never twice, and never claimed again in the same statement.

Real PostgreSQL and a real SMTP server; time moves only through the ManualClock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from service.clock import ManualClock
from service.db import outbox as outbox_table
from service.worker import BATCH_SIZE, Worker
from tests.support.dates import birth_date_years_ago
from tests.support.flows import create_request
from tests.support.stored_data import email_row

LEASE = timedelta(seconds=30)


async def _requests(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, count: int
) -> list[Any]:
    return [
        await create_request(
            client,
            auth,
            subject_id=f"child-batch-{number}",
            email=f"batch-{number}@example.com",
            birth_date=birth_date_years_ago(clock),
        )
        for number in range(count)
    ]


async def _sent_at(db: asyncpg.Connection, item_id: Any) -> Any:
    return await db.fetchval("select sent_at from outbox where id = $1", item_id)


async def test_the_next_claim_records_the_batch_sent(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    first_id, second_id = await _requests(client, auth, clock, 2)
    [first] = await outbox_table.claim_due(db, now=clock.now(), limit=1, lease=LEASE)
    [second] = await outbox_table.claim_due(db, now=clock.now(), limit=1, lease=LEASE, sent=[first])
    assert {first.related_id, second.related_id} == {first_id, second_id}
    sent_row = await email_row(db, first.related_id)
    assert sent_row["status"] == "sent"
    assert sent_row["payload_enc"] is None
    assert await _sent_at(db, first.id) == clock.now()
    assert (await email_row(db, second.related_id))["status"] == "pending"

    # Recording it again, or a claim of ours that was taken over, changes nothing.
    clock.advance(LEASE + timedelta(seconds=1))
    [again] = await outbox_table.claim_due(db, now=clock.now(), limit=5, lease=LEASE, sent=[first])
    assert again.id == second.id
    assert (
        await outbox_table.claim_due(db, now=clock.now(), limit=5, lease=LEASE, sent=[second]) == []
    )
    row = await email_row(db, second.related_id)
    assert row["status"] == "pending"
    assert row["attempts"] == again.attempts
    assert await _sent_at(db, first.id) == clock.now() - LEASE - timedelta(seconds=1)


async def test_a_message_recorded_sent_is_not_claimed_by_the_same_statement(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    [request_id] = await _requests(client, auth, clock, 1)
    [claimed] = await outbox_table.claim_due(db, now=clock.now(), limit=1, lease=LEASE)
    # Its lease has run out, so it is due again: the statement that records it sent must
    # not hand it out once more.
    clock.advance(LEASE + timedelta(seconds=1))
    assert (
        await outbox_table.claim_due(db, now=clock.now(), limit=5, lease=LEASE, sent=[claimed])
        == []
    )
    row = await email_row(db, request_id)
    assert row["status"] == "sent"
    assert row["attempts"] == claimed.attempts


async def test_the_worker_delivers_several_batches_each_once(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    worker: Worker,
    mailbox: Any,
) -> None:
    count = BATCH_SIZE * 2 + 1
    request_ids = await _requests(client, auth, clock, count)
    assert await worker.deliver_due() == count
    for number, request_id in enumerate(request_ids):
        row = await email_row(db, request_id)
        assert (row["status"], row["attempts"], row["payload_enc"]) == ("sent", 1, None)
        assert len(mailbox.to(f"batch-{number}@example.com")) == 1
    assert await worker.deliver_due() == 0
