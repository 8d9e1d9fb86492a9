"""Webhooks reach a real HTTP receiver, signed per Standard Webhooks, at least once: a receiver
that is down or failing gets the same message (same ``webhook-id``) once it recovers, and a
message that ran out of attempts can be replayed from the command line."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from service.clock import ManualClock
from tests.support.cli import run_cli
from tests.support.credentials import bearer, make_api_key
from tests.support.flows import open_request
from tests.support.guardian_client import open_and_submit
from tests.support.service import Service, start_service
from tests.support.webhooks import (
    WEBHOOK_SECRET,
    WebhookReceiver,
    verified_payload,
    webhook_receiver,
)

GUARDIAN = "webhook.parent@example.com"
SUBJECT = "child-webhook-1"


async def _deny(svc: Service, db: asyncpg.Connection, mailbox: Any, clock: ManualClock) -> str:
    """A guardian denies; the service owes the app one ``consent.denied`` webhook."""
    api = bearer(await make_api_key(db))
    request_id, link = await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    denied = await open_and_submit(svc.client, link, {"decision": "deny"})
    assert denied.status_code == 200, denied.text
    return request_id


async def _webhook_row(db: asyncpg.Connection) -> asyncpg.Record:
    [row] = await db.fetch("select * from outbox where kind = 'webhook'")
    return row


def _move_past(clock: ManualClock, moment: Any) -> None:
    assert moment > clock.now()
    clock.set(moment + timedelta(seconds=1))


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver(started=False) as not_yet_running:
        yield not_yet_running


def _env(receiver: WebhookReceiver, **extra: str) -> dict[str, str]:
    return {
        "CONSENT_WEBHOOK_URL": receiver.url,
        "CONSENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        **extra,
    }


async def test_receiver_down_then_failing_then_back_gets_the_same_message(
    base_env: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    mailbox: Any,
    receiver: WebhookReceiver,
) -> None:
    async with start_service(base_env, clock, _env(receiver)) as svc:
        request_id = await _deny(svc, db, mailbox, clock)

        # 1. Nobody listens: the attempt fails, the message stays queued with a backoff.
        assert await svc.worker.deliver_due() == 0
        row = await _webhook_row(db)
        assert (row["status"], row["attempts"]) == ("pending", 1)
        assert row["last_error"]
        assert row["next_attempt_at"] > clock.now()
        message_id = str(row["id"])
        # Not retried before its backoff has passed.
        assert await svc.worker.deliver_due() == 0
        assert (await _webhook_row(db))["attempts"] == 1

        # 2. The receiver is up but answers 503: still pending, attempt counted.
        receiver.status = 503
        await asyncio.to_thread(receiver.start)
        _move_past(clock, row["next_attempt_at"])
        assert await svc.worker.deliver_due() == 0
        row = await _webhook_row(db)
        assert (row["status"], row["attempts"]) == ("pending", 2)
        assert "503" in row["last_error"]
        assert len(receiver.deliveries) == 1

        # 3. The receiver recovers: delivered once the backoff has passed, same id.
        receiver.status = 204
        assert await svc.worker.deliver_due() == 0  # backoff not yet over
        _move_past(clock, row["next_attempt_at"])
        assert await svc.worker.deliver_due() == 1
        row = await _webhook_row(db)
        assert row["status"] == "sent"
        assert row["payload"] is None
        assert row["last_error"] is None

    deliveries = receiver.deliveries
    assert [d.answered for d in deliveries] == [503, 204]
    assert {d.webhook_id for d in deliveries} == {message_id}
    bodies = [verified_payload(d) for d in deliveries]
    assert bodies[0] == bodies[1]  # the same event, not a new one
    assert bodies[0]["type"] == "consent.denied"
    assert bodies[0]["data"]["subject_id"] == SUBJECT
    assert bodies[0]["data"]["request_id"] == request_id
    assert bodies[0]["data"]["status"] == "denied"
    assert b"webhook.parent" not in deliveries[0].body.lower()


async def test_dead_message_is_listed_and_replayed_with_the_same_id(
    base_env: dict[str, str],
    database_url: str,
    clock: ManualClock,
    db: asyncpg.Connection,
    mailbox: Any,
    receiver: WebhookReceiver,
) -> None:
    receiver.status = 503
    await asyncio.to_thread(receiver.start)
    env = _env(receiver, CONSENT_OUTBOX_MAX_ATTEMPTS="2")
    async with start_service(base_env, clock, env) as svc:
        await _deny(svc, db, mailbox, clock)
        assert await svc.worker.deliver_due() == 0
        row = await _webhook_row(db)
        assert (row["status"], row["attempts"]) == ("pending", 1)
        _move_past(clock, row["next_attempt_at"])
        assert await svc.worker.deliver_due() == 0
        row = await _webhook_row(db)
        assert (row["status"], row["attempts"]) == ("dead", 2)
        assert "503" in row["last_error"]
        message_id = str(row["id"])

        # Dead means dead: no more attempts however long we wait.
        clock.advance(timedelta(days=2))
        assert await svc.worker.deliver_due() == 0
        assert len(receiver.deliveries) == 2
        assert (await _webhook_row(db))["status"] == "dead"

        cli_env = {"CONSENT_DATABASE_URL": database_url}
        listed = await run_cli("outbox", "list", env=cli_env)
        assert listed.code == 0, listed.stderr
        [line] = [line for line in listed.stdout.splitlines() if message_id in line]
        assert "dead" in line
        assert "consent.denied" in line
        assert "503" in line

        receiver.status = 200
        retried = await run_cli("outbox", "retry", message_id, env=cli_env)
        assert retried.code == 0, retried.stderr
        assert message_id in retried.stdout
        row = await _webhook_row(db)
        assert (row["status"], row["attempts"]) == ("pending", 0)
        assert message_id not in (await run_cli("outbox", "list", env=cli_env)).stdout

        assert await svc.worker.deliver_due() == 1
        assert (await _webhook_row(db))["status"] == "sent"

        # Replaying a message that is not dead is refused with one line.
        again = await run_cli("outbox", "retry", message_id, env=cli_env)
        assert again.code != 0
        assert len(again.stderr.strip().splitlines()) == 1
        unknown = await run_cli("outbox", "retry", str(uuid.uuid4()), env=cli_env)
        assert unknown.code != 0

    deliveries = receiver.deliveries
    assert [d.answered for d in deliveries] == [503, 503, 200]
    assert {d.webhook_id for d in deliveries} == {message_id}
    for delivery in deliveries:
        assert verified_payload(delivery)["type"] == "consent.denied"


async def test_signature_covers_id_timestamp_and_body(
    base_env: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    mailbox: Any,
    receiver: WebhookReceiver,
) -> None:
    """A receiver verifying with another secret, or a body altered in transit, must fail."""
    await asyncio.to_thread(receiver.start)
    async with start_service(base_env, clock, _env(receiver)) as svc:
        await _deny(svc, db, mailbox, clock)
        assert await svc.worker.deliver_due() == 1
    [delivery] = receiver.deliveries
    verified_payload(delivery)
    other_secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    with pytest.raises(AssertionError, match="signature mismatch"):
        verified_payload(delivery, other_secret)
    tampered = type(delivery)(
        delivery.headers, delivery.body.replace(b"denied", b"granted"), delivery.answered
    )
    with pytest.raises(AssertionError, match="signature mismatch"):
        verified_payload(tampered)
    assert delivery.headers["content-type"] == "application/json"
