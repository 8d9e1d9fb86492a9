"""Claim leases (``CONSENT_OUTBOX_LEASE``): a worker killed mid-send loses its message within
one short lease and another worker sends it again with the same ``Message-ID``; a send that
takes longer than the lease keeps its claim, renewed by the worker while it works.

Real ``consent-service worker`` processes (killed with SIGKILL, not stopped), a real SMTP server
that records every DATA and holds its answer to one recipient for as long as the test wants,
real PostgreSQL. Waits are bounded polls of what the database and the server saw; nothing is
asserted about how long anything took.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.clock import ManualClock
from service.db import outbox as outbox_table
from service.delivery import outbox
from service.delivery.smtp import message_id
from service.settings import ConfigError, load_settings
from tests.support.dates import birth_date_years_ago
from tests.support.flows import create_request
from tests.support.processes import console_script, output, poll
from tests.support.smtp_servers import RecordingSmtpServer
from tests.support.stored_data import email_row

MAIL_FROM = "consent@tutoring.example"  # base_env's CONSENT_MAIL_FROM
STALLED = "stalled.guardian@example.com"
OTHER = "other.guardian@example.com"


@pytest.fixture
def smtp() -> Iterator[RecordingSmtpServer]:
    server = RecordingSmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def worker(
    env: dict[str, str], log: Path, smtp: RecordingSmtpServer
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``consent-service worker``; the server answers whatever it held before the worker is
    stopped, so a worker stuck in a send does not keep the test waiting."""
    async with console_script("worker", env=env, log=log) as process:
        try:
            yield process
        finally:
            smtp.release()


def worker_env(base_env: dict[str, str], smtp: RecordingSmtpServer, lease: int) -> dict[str, str]:
    # The SMTP timeout is far longer than the stall: only a lease could end the first attempt.
    return {
        **base_env,
        "CONSENT_SMTP_URL": f"{smtp.url}?timeout=300",
        "CONSENT_OUTBOX_LEASE": str(lease),
    }


async def request_for(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, guardian: str
) -> uuid.UUID:
    return await create_request(
        client,
        auth,
        subject_id=f"child-{guardian.partition('.')[0]}",
        email=guardian,
        birth_date=birth_date_years_ago(clock),
    )


async def test_a_message_held_by_a_killed_worker_is_sent_again_within_the_short_lease(
    base_env: dict[str, str],
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    smtp: RecordingSmtpServer,
    tmp_path: Path,
) -> None:
    request_id = await request_for(client, auth, clock, STALLED)
    item_id = (await email_row(db, request_id))["id"]
    env = worker_env(base_env, smtp, lease=2)
    smtp.stall(STALLED)

    first_log = tmp_path / "first-worker.log"
    async with worker(env, first_log, smtp) as first:

        async def first_attempt_sent() -> bool:
            return len(smtp.messages_to(STALLED)) == 1

        await poll(first_attempt_sent, "the first worker's DATA", first, first_log)
        first.kill()  # SIGKILL mid-send: no cleanup, no answer to the DATA, the claim held
        await first.wait()
    # The server answers from here on (the block released it); the first worker is gone.

    second_log = tmp_path / "second-worker.log"
    async with worker(env, second_log, smtp) as second:

        async def sent() -> bool:
            return bool((await email_row(db, request_id))["status"] == "sent")

        # The default wait of the poll (about a minute) is far below the old fixed two-minute
        # lease: only a short lease gets the message out in time.
        await poll(sent, "the second worker to send the message again", second, second_log)

    first_attempt, second_attempt = smtp.messages_to(STALLED)
    assert first_attempt.message_id == second_attempt.message_id == message_id(item_id, MAIL_FROM)
    assert first_attempt.message_id == f"<{item_id}@tutoring.example>"
    row = await email_row(db, request_id)
    assert row["attempts"] == 2, output(second_log)


async def test_a_send_longer_than_the_lease_keeps_its_claim_while_the_worker_works(
    base_env: dict[str, str],
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    smtp: RecordingSmtpServer,
    tmp_path: Path,
) -> None:
    lease = 3
    request_id = await request_for(client, auth, clock, STALLED)
    env = worker_env(base_env, smtp, lease=lease)
    smtp.stall(STALLED)

    first_log, second_log = tmp_path / "first-worker.log", tmp_path / "second-worker.log"
    async with worker(env, first_log, smtp) as first:

        async def first_attempt_sent() -> bool:
            return len(smtp.messages_to(STALLED)) == 1

        await poll(first_attempt_sent, "the first worker's DATA", first, first_log)
        claimed = await claim_of(db, request_id)
        lease_then = claimed["next_attempt_at"]

        async with worker(env, second_log, smtp) as second:

            async def renewed_over_two_leases() -> bool:
                row = await claim_of(db, request_id)
                assert row["claim_id"] == claimed["claim_id"], "another worker took the message"
                return bool(row["next_attempt_at"] >= lease_then + 2 * timedelta(seconds=lease))

            # Two whole leases after the one the claim began with, the claim is still the first
            # worker's: it renewed it while it waited for the server, and the second worker,
            # polling all along, never took the message over.
            await poll(renewed_over_two_leases, "the claim to be renewed", first, first_log)

            # The second worker is alive and claiming: it delivers a message due now.
            other_id = await request_for(client, auth, clock, OTHER)

            async def other_sent() -> bool:
                return bool((await email_row(db, other_id))["status"] == "sent")

            await poll(other_sent, "the second worker to send another message", second, second_log)
            assert len(smtp.messages_to(OTHER)) == 1
            assert len(smtp.messages_to(STALLED)) == 1
            still = await claim_of(db, request_id)
            assert (still["status"], still["attempts"]) == ("pending", 1)
            assert still["claim_id"] == claimed["claim_id"]

            smtp.release()

            async def sent() -> bool:
                return bool((await email_row(db, request_id))["status"] == "sent")

            await poll(sent, "the slow send to finish", first, first_log)

    assert len(smtp.messages_to(STALLED)) == 1, "sent once, by the worker that claimed it"
    done = await claim_of(db, request_id)
    assert (done["status"], done["attempts"]) == ("sent", 1)
    assert done["claim_id"] == claimed["claim_id"]


async def claim_of(db: asyncpg.Connection, request_id: uuid.UUID) -> asyncpg.Record:
    row = await db.fetchrow(
        "select status, attempts, claim_id, next_attempt_at from outbox "
        "where related_id = $1 and kind = 'email'",
        request_id,
    )
    assert row is not None
    return row


# ---- renewing a claim --------------------------------------------------------------------------


async def test_only_the_current_claimer_renews_and_a_finished_message_is_not_renewed(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    lease = timedelta(seconds=10)
    request_id = await request_for(client, auth, clock, STALLED)
    [first] = await outbox_table.claim_due(db, now=clock.now(), limit=10, lease=lease)

    clock.advance(lease / 2)
    assert await outbox.renew_claims(db, [first], now=clock.now(), lease=lease) == {first.id}
    clock.advance(lease * 0.9)  # past the first lease, within the renewed one
    assert await outbox_table.claim_due(db, now=clock.now(), limit=10, lease=lease) == []

    clock.advance(lease)  # the renewed lease ran out: another worker takes the message
    [second] = await outbox_table.claim_due(db, now=clock.now(), limit=10, lease=lease)
    assert second.id == first.id
    assert await outbox.renew_claims(db, [first], now=clock.now(), lease=lease) == set()
    assert await outbox.renew_claims(db, [second], now=clock.now(), lease=lease) == {second.id}

    await outbox_table.mark_sent(db, second, clock.now())
    assert await outbox.renew_claims(db, [second], now=clock.now(), lease=lease) == set()
    assert (await email_row(db, request_id))["status"] == "sent"


# ---- configuration ---------------------------------------------------------------------------


def test_the_lease_is_configurable_and_short_by_default(base_env: dict[str, str]) -> None:
    assert load_settings(base_env).outbox_lease == 15
    assert load_settings({**base_env, "CONSENT_OUTBOX_LEASE": "4"}).outbox_lease == 4
    for bad in ("0", "3601", "soon"):
        with pytest.raises(ConfigError) as error:
            load_settings({**base_env, "CONSENT_OUTBOX_LEASE": bad})
        assert str(error.value).startswith("CONSENT_OUTBOX_LEASE:")
