"""Emails the worker cannot deliver: a message it cannot even read does not stop the worker
or the batch, and a dead email keeps its payload only as long as the retention allows (or
until its request ends).

Real PostgreSQL and a real SMTP server; time moves only through the ManualClock.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from service.clock import ManualClock
from service.db import outbox as outbox_table
from service.dev.pgcluster import free_port
from service.settings import DAY, Settings, load_settings
from service.worker import Worker
from tests.support.dates import birth_date_years_ago
from tests.support.flows import create_request
from tests.support.service import worker_for
from tests.support.stored_data import email_row

EXCEPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ---- the worker survives a message it cannot deliver -----------------------------------------


def _prefixed(blob: bytes, _protector: Any, _item_id: uuid.UUID) -> bytes:
    return b"\x01" + blob


def _random(_blob: bytes, _protector: Any, _item_id: uuid.UUID) -> bytes:
    return os.urandom(48)


def _empty(_blob: bytes, _protector: Any, _item_id: uuid.UUID) -> bytes:
    return b""


def _not_json(_blob: bytes, protector: Any, item_id: uuid.UUID) -> bytes:
    encrypted: bytes = protector.encrypt(b"this is not json", item_id.bytes)
    return encrypted


def _wrong_shape(_blob: bytes, protector: Any, item_id: uuid.UUID) -> bytes:
    encrypted: bytes = protector.encrypt(b'{"to": 42}', item_id.bytes)
    return encrypted


Corruption = Callable[[bytes, Any, uuid.UUID], bytes]


@pytest.mark.parametrize(
    "corrupt",
    [_prefixed, _random, _empty, _not_json, _wrong_shape],
    ids=["prefixed", "random", "empty", "not-json", "wrong-shape"],
)
async def test_an_undeliverable_email_does_not_stop_the_worker(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    corrupt: Corruption,
) -> None:
    bad_email, good_email = "broken.payload@example.com", "good.payload@example.com"
    birth = birth_date_years_ago(clock)
    bad_request = await create_request(
        client, auth, subject_id="child-bad-payload", email=bad_email, birth_date=birth
    )
    clock.advance(timedelta(seconds=1))  # the broken one is due first, in the same batch
    good_request = await create_request(
        client, auth, subject_id="child-good-payload", email=good_email, birth_date=birth
    )
    bad = await email_row(db, bad_request)
    await db.execute(
        "update outbox set payload_enc = $2 where id = $1",
        bad["id"],
        corrupt(bytes(bad["payload_enc"]), worker.runtime.protector, bad["id"]),
    )

    delivered = await worker.deliver_due()

    assert delivered == 1
    assert len(mailbox.to(good_email)) == 1
    assert mailbox.to(bad_email) == []
    assert (await email_row(db, good_request))["status"] == "sent"
    failed = await email_row(db, bad_request)
    assert failed["status"] == "pending"
    assert failed["attempts"] == 1
    assert failed["last_error"]
    assert EXCEPTION_NAME.fullmatch(failed["last_error"]), failed["last_error"]
    assert bad_email not in failed["last_error"]
    assert "broken.payload" not in failed["last_error"]
    if corrupt is _prefixed:
        assert failed["last_error"] == "InvalidTag"
    # Nothing else is due now; the broken message waits for its backoff, without a loop.
    assert await worker.deliver_due() == 0
    assert (await email_row(db, bad_request))["attempts"] == 1


# ---- retention of undelivered payloads -------------------------------------------------------


def dead_letter_settings(base_env: dict[str, str]) -> Settings:
    """One attempt only, against an SMTP port nobody listens on; expired data kept one day."""
    return load_settings(
        {
            **base_env,
            "CONSENT_SMTP_URL": f"smtp://127.0.0.1:{free_port()}?timeout=5",
            "CONSENT_OUTBOX_MAX_ATTEMPTS": "1",
            "CONSENT_RETENTION_EXPIRED": str(DAY),
        }
    )


@pytest.fixture
async def failing_worker(base_env: dict[str, str], clock: ManualClock) -> AsyncIterator[Worker]:
    async with worker_for(dead_letter_settings(base_env), clock) as worker:
        yield worker


async def test_dead_email_keeps_its_payload_only_until_the_retention_has_passed(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    failing_worker: Worker,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    request_id = await create_request(
        client,
        auth,
        subject_id="child-dead-letter",
        email="dead.letter@example.com",
        birth_date=birth_date_years_ago(clock),
    )
    assert await failing_worker.deliver_due() == 0
    dead = await email_row(db, request_id)
    assert dead["status"] == "dead"
    assert dead["payload_enc"] is not None

    clock.set(dead["created_at"] + timedelta(days=1))  # exactly the retention: kept
    await failing_worker.sweep()
    kept = await email_row(db, request_id)
    assert kept["status"] == "dead"
    assert kept["payload_enc"] is not None

    clock.advance(timedelta(seconds=1))
    await failing_worker.sweep()
    purged = await email_row(db, request_id)
    assert purged["status"] == "dead"
    assert purged["payload_enc"] is None
    assert await db.fetchval("select payload from outbox where id = $1", dead["id"]) is None
    # Nothing is left to retry once the payload is gone.
    assert await outbox_table.requeue_dead(db, dead["id"], clock.now()) is None
    assert (
        await db.fetchval("select status from consent_requests where id = $1", request_id)
        == "pending"
    )


@pytest.mark.parametrize("ending", ["superseded", "expired"])
async def test_a_dead_email_is_cleared_when_its_request_ends(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    failing_worker: Worker,
    worker: Worker,
    clock: ManualClock,
    db: asyncpg.Connection,
    ending: str,
) -> None:
    birth = birth_date_years_ago(clock)
    request_id = await create_request(
        client,
        auth,
        subject_id="child-dead-cancel",
        email="dead.cancel@example.com",
        birth_date=birth,
    )
    assert await failing_worker.deliver_due() == 0
    assert (await email_row(db, request_id))["status"] == "dead"

    if ending == "superseded":
        newer = await create_request(
            client,
            auth,
            subject_id="child-dead-cancel",
            email="dead.cancel.other@example.com",
            birth_date=birth,
        )
        assert (await email_row(db, newer))["payload_enc"] is not None
    else:
        # A worker with the default (30-day) retention: the expiry, not a purge, clears it.
        clock.advance(timedelta(days=7, seconds=1))
        assert (await worker.sweep())["expired_requests"] == 1

    cleared = await email_row(db, request_id)
    assert cleared["status"] == "cancelled"
    assert cleared["payload_enc"] is None
