"""Outbox delivery against a real SMTP server: outages, retries, leases, dead letters,
concurrent workers, and the shape of the emails that go out."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any

import asyncpg
import httpx

from service.clock import ManualClock
from service.db import outbox as outbox_table
from service.dev.mailcatcher import MailCatcher
from service.settings import Settings, load_settings
from service.worker import Worker
from tests.support.flows import create_request
from tests.support.guardian_client import guardian_link
from tests.support.service import worker_for

GUARDIAN = "outbox.guardian@example.com"
# The lease of the claims these tests make by hand, as a replica would.
LEASE = timedelta(seconds=30)


async def create(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    *,
    subject_id: str = "child-outbox-1",
    guardian_email: str = GUARDIAN,
    **overrides: Any,
) -> uuid.UUID:
    """Open a request for a ten-year-old (born 20 May); its email is due at once."""
    return await create_request(
        client,
        auth,
        subject_id=subject_id,
        email=guardian_email,
        birth_date=date(clock.now().year - 10, 5, 20).isoformat(),
        **overrides,
    )


async def outbox_row(db: asyncpg.Connection, related_id: uuid.UUID) -> asyncpg.Record:
    row = await db.fetchrow(
        "select status, attempts, next_attempt_at, last_error, payload, payload_enc, sent_at "
        "from outbox where related_id = $1",
        related_id,
    )
    assert row is not None
    return row


@contextmanager
def smtp_down(smtp_server: MailCatcher) -> Iterator[None]:
    """Stop the session's SMTP server; always start it again on the same port afterwards."""
    port = smtp_server.port
    smtp_server.stop()
    try:
        yield
    finally:
        smtp_server.start()
        assert smtp_server.port == port


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=email_policy.default)
    assert isinstance(message, EmailMessage)
    return message


# ---- outages and retries --------------------------------------------------------------------


async def test_email_is_delivered_after_the_smtp_server_returns(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    smtp_server: MailCatcher,
) -> None:
    request_id = await create(client, auth, clock)

    with smtp_down(smtp_server):
        assert await worker.deliver_due() == 0
        failed = await outbox_row(db, request_id)
        assert failed["status"] == "pending"
        assert failed["attempts"] == 1
        assert failed["next_attempt_at"] > clock.now()
        assert failed["last_error"]
        assert GUARDIAN not in failed["last_error"]
        assert failed["payload_enc"] is not None  # nothing lost

        # Not due again until the backoff has passed.
        assert await worker.deliver_due() == 0
        assert (await outbox_row(db, request_id))["attempts"] == 1

    assert mailbox.messages == []
    clock.set(failed["next_attempt_at"] + timedelta(seconds=1))
    assert await worker.deliver_due() == 1

    [message] = mailbox.messages
    assert message.recipients == [GUARDIAN]
    assert "/guardian/" in guardian_link(message.text)
    sent = await outbox_row(db, request_id)
    assert sent["status"] == "sent"
    assert sent["attempts"] == 2
    assert sent["sent_at"] == clock.now()
    assert sent["payload_enc"] is None
    assert sent["payload"] is None
    assert sent["last_error"] is None

    clock.advance(timedelta(hours=2))
    assert await worker.deliver_due() == 0
    assert len(mailbox.messages) == 1


async def test_sent_email_payload_is_cleared(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    request_id = await create(client, auth, clock)
    assert (await outbox_row(db, request_id))["payload_enc"] is not None

    assert await worker.deliver_due() == 1

    row = await outbox_row(db, request_id)
    assert row["status"] == "sent"
    assert row["attempts"] == 1
    assert row["payload_enc"] is None
    assert row["payload"] is None
    assert len(mailbox.to(GUARDIAN)) == 1


async def test_message_claimed_by_a_worker_that_died_is_delivered_after_the_lease(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    request_id = await create(client, auth, clock)
    # A replica claims the message and dies before sending or marking it.
    [claimed] = await outbox_table.claim_due(db, now=clock.now(), limit=10, lease=LEASE)
    assert claimed.related_id == request_id

    assert await worker.deliver_due() == 0  # still leased to the dead replica
    assert mailbox.messages == []

    clock.advance(LEASE + timedelta(seconds=1))
    assert await worker.deliver_due() == 1
    assert len(mailbox.to(GUARDIAN)) == 1
    assert (await outbox_row(db, request_id))["status"] == "sent"


async def test_message_is_dead_after_the_maximum_attempts(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    base_env: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    smtp_server: MailCatcher,
) -> None:
    request_id = await create(client, auth, clock)
    settings = load_settings({**base_env, "CONSENT_OUTBOX_MAX_ATTEMPTS": "2"})

    async with worker_for(settings, clock) as limited:
        with smtp_down(smtp_server):
            assert await limited.deliver_due() == 0
            first = await outbox_row(db, request_id)
            assert (first["status"], first["attempts"]) == ("pending", 1)

            clock.set(first["next_attempt_at"] + timedelta(seconds=1))
            assert await limited.deliver_due() == 0
            dead = await outbox_row(db, request_id)
            assert (dead["status"], dead["attempts"]) == ("dead", 2)
            assert dead["last_error"]

        # A dead message is not retried, even once the server is back.
        clock.advance(timedelta(hours=3))
        assert await limited.deliver_due() == 0
    assert mailbox.messages == []
    assert (await outbox_row(db, request_id))["status"] == "dead"


# ---- several workers ------------------------------------------------------------------------


async def test_two_workers_deliver_each_email_exactly_once(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    settings: Settings,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    guardians = [f"guardian{n}@example.com" for n in range(25)]
    for n, email in enumerate(guardians):
        await create(client, auth, clock, subject_id=f"child-{n}", guardian_email=email)

    async with worker_for(settings, clock) as first, worker_for(settings, clock) as second:
        delivered = await asyncio.gather(first.deliver_due(), second.deliver_due())
        assert sum(delivered) == len(guardians)
        assert list(await asyncio.gather(first.deliver_due(), second.deliver_due())) == [0, 0]

    received = Counter(r for message in mailbox.messages for r in message.recipients)
    assert received == Counter(guardians)
    rows = await db.fetch("select status, attempts from outbox")
    assert len(rows) == len(guardians)
    assert {(row["status"], row["attempts"]) for row in rows} == {("sent", 1)}


# ---- what goes out --------------------------------------------------------------------------


async def test_emails_are_multipart_text_and_html_in_the_guardians_language(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    settings: Settings,
) -> None:
    await create(
        client, auth, clock, subject_id="child-en", guardian_email="en@example.com", locale="en"
    )
    await create(
        client, auth, clock, subject_id="child-sl", guardian_email="sl@example.com", locale="sl"
    )
    assert await worker.deliver_due() == 2

    expectations = {
        "en@example.com": ("en", "your consent is needed", "Tutoring", "Review the request"),
        "sl@example.com": ("sl", "potrebujemo vaše soglasje", "Inštrukcije", "Preglejte zahtevo"),
    }
    for address, (language, subject, title, button) in expectations.items():
        [captured] = mailbox.to(address)
        message = parsed(captured.raw)
        assert message.get_content_type() == "multipart/alternative"
        parts = list(message.iter_parts())
        assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
        assert all(part.get_content_charset() == "utf-8" for part in parts)
        assert message["Content-Language"] == language
        assert message["From"] == settings.mail_from
        assert message["To"] == address
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["Message-ID"]
        assert subject in captured.subject
        assert title in captured.text
        assert title in captured.html
        assert button in captured.html
        link = guardian_link(captured.text)
        assert link in captured.html
        assert link.startswith("http://consent.test/guardian/")
