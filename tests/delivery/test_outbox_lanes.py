"""Outbox lanes (``CONSENT_OUTBOX_CONCURRENCY``): a worker sends on several SMTP connections at
once, each draining batches it claimed itself; every message still goes exactly once, and a
send the server holds up keeps only its own lane waiting.

Real PostgreSQL, a real SMTP server that can hold its answer to one recipient; waits are
bounded polls of what the server saw, nothing is asserted about how long anything took.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from service.clock import ManualClock
from service.delivery import smtp
from service.delivery.emails import RenderedEmail
from service.settings import ConfigError, load_settings
from service.worker import BATCH_SIZE
from tests.support.dates import birth_date_years_ago
from tests.support.flows import create_request
from tests.support.service import worker_for
from tests.support.smtp_servers import RecordingSmtpServer
from tests.support.stored_data import email_row

STALLED = "stalled.guardian@example.com"


@pytest.fixture
def recording_smtp() -> Iterator[RecordingSmtpServer]:
    server = RecordingSmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


async def _requests(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, guardians: list[str]
) -> list[uuid.UUID]:
    return [
        await create_request(
            client,
            auth,
            subject_id=f"child-lane-{number}",
            email=guardian,
            birth_date=birth_date_years_ago(clock),
        )
        for number, guardian in enumerate(guardians)
    ]


def test_the_concurrency_is_configurable_and_small_by_default(base_env: dict[str, str]) -> None:
    assert load_settings(base_env).outbox_concurrency == 1
    for good in ("1", "16"):
        settings = load_settings({**base_env, "CONSENT_OUTBOX_CONCURRENCY": good})
        assert settings.outbox_concurrency == int(good)
    for bad in ("0", "17", "many"):
        with pytest.raises(ConfigError) as error:
            load_settings({**base_env, "CONSENT_OUTBOX_CONCURRENCY": bad})
        assert str(error.value).startswith("CONSENT_OUTBOX_CONCURRENCY:")


async def test_lanes_deliver_every_message_once(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    base_env: dict[str, str],
    recording_smtp: RecordingSmtpServer,
) -> None:
    guardians = [f"lane-{number}@example.com" for number in range(BATCH_SIZE * 3 + 5)]
    request_ids = await _requests(client, auth, clock, guardians)
    settings = load_settings(
        {**base_env, "CONSENT_SMTP_URL": recording_smtp.url, "CONSENT_OUTBOX_CONCURRENCY": "4"}
    )
    async with worker_for(settings, clock, max_size=6) as worker:
        assert len(worker.senders) == 4
        assert await worker.deliver_due() == len(guardians)
        assert await worker.deliver_due() == 0
    for guardian, request_id in zip(guardians, request_ids, strict=True):
        assert len(recording_smtp.messages_to(guardian)) == 1
        row = await email_row(db, request_id)
        assert (row["status"], row["attempts"], row["payload_enc"]) == ("sent", 1, None)


async def test_a_held_up_send_keeps_only_its_own_lane_waiting(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    base_env: dict[str, str],
    recording_smtp: RecordingSmtpServer,
) -> None:
    others = [f"lane-other-{number}@example.com" for number in range(BATCH_SIZE * 2)]
    # Queued first, so a single lane would meet it before any other.
    request_ids = await _requests(client, auth, clock, [STALLED, *others])
    # The SMTP timeout is far longer than the hold: the held-up send ends only when released.
    settings = load_settings(
        {
            **base_env,
            "CONSENT_SMTP_URL": f"{recording_smtp.url}?timeout=300",
            "CONSENT_OUTBOX_CONCURRENCY": "2",
        }
    )
    recording_smtp.stall(STALLED)
    async with worker_for(settings, clock) as worker:
        delivering = asyncio.create_task(worker.deliver_due())
        try:
            # At most the rest of the held-up message's batch waits behind it: the other lane
            # sends every message outside that batch meanwhile.
            expected = len(others) - (BATCH_SIZE - 1)
            for _ in range(600):
                delivered = sum(len(recording_smtp.messages_to(other)) for other in others)
                if delivered >= expected and recording_smtp.messages_to(STALLED):
                    break
                assert not delivering.done(), delivering
                await asyncio.sleep(0.1)
            else:
                pytest.fail(f"the other lane sent {delivered} of at least {expected} messages")
        finally:
            recording_smtp.release()
        assert await delivering == len(others) + 1
    for guardian, request_id in zip([STALLED, *others], request_ids, strict=True):
        assert len(recording_smtp.messages_to(guardian)) == 1
        assert (await email_row(db, request_id))["status"] == "sent"


def test_no_header_naming_a_person_is_kept_between_emails() -> None:
    """Only the MIME structure's headers are parsed once and reused; the recipient and the
    subject line are parsed for each email and kept nowhere."""
    guardian = "kept.nowhere@example.com"
    message = smtp.build_message(
        item_id=uuid.uuid4(),
        mail_from="Tutoring <consent@tutoring.example>",
        to=guardian,
        email=RenderedEmail(subject="Consent for Ana", text="Hello\n", html="<p>Hello</p>"),
        locale="en",
    )
    assert message["To"] == guardian
    registry = smtp.POLICY.header_factory
    kept = " ".join(f"{name}: {value}" for name, value in registry._parsed)
    assert "Content-Type" in kept
    assert guardian not in kept
    assert "Ana" not in kept
