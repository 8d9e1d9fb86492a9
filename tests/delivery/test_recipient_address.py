"""The recipient of a stored email is checked again when it is sent: the ``To`` header and the
envelope are the validated address and nothing else, whatever the stored payload says.

Real PostgreSQL and a real SMTP server (the mail catcher).
"""

from __future__ import annotations

from email import message_from_bytes
from email import policy as email_policy
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from service.clock import ManualClock
from service.delivery import outbox
from service.worker import Worker
from tests.support.dates import birth_date_years_ago
from tests.support.flows import create_request
from tests.support.stored_data import email_row

GUARDIAN = "recipient.check@example.com"


async def _store_recipient(
    db: asyncpg.Connection, worker: Worker, request_id: Any, to: str
) -> None:
    """Rewrite the request email's stored recipient (as a payload written by other code would)."""
    row = await email_row(db, request_id)
    protector = worker.runtime.protector
    payload = msgspec.json.decode(
        protector.decrypt(bytes(row["payload_enc"]), row["id"].bytes), type=outbox.EmailPayload
    )
    tampered = msgspec.json.encode(msgspec.structs.replace(payload, to=to))
    await db.execute(
        "update outbox set payload_enc = $2 where id = $1",
        row["id"],
        protector.encrypt(tampered, row["id"].bytes),
    )


@pytest.mark.parametrize(
    "stored",
    [
        f"{GUARDIAN}, attacker@evil.example",
        f"{GUARDIAN}\r\nBcc: attacker@evil.example",
        f"Guardian <{GUARDIAN}>",
        f"=?utf-8?q?attacker=40evil.example?= <{GUARDIAN}>",
    ],
    ids=["two addresses", "header injection", "display name", "encoded word"],
)
async def test_a_stored_recipient_that_is_not_one_valid_address_is_never_sent(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    stored: str,
) -> None:
    request_id = await create_request(
        client,
        auth,
        subject_id="child-recipient",
        email=GUARDIAN,
        birth_date=birth_date_years_ago(clock),
    )
    await _store_recipient(db, worker, request_id, stored)

    assert await worker.deliver_due() == 0

    assert mailbox.messages == []
    failed = await email_row(db, request_id)
    assert failed["status"] == "pending"
    assert failed["last_error"] == "InvalidEmailAddress"


async def test_a_stored_unicode_domain_is_sent_to_its_a_labels(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    request_id = await create_request(
        client,
        auth,
        subject_id="child-recipient-idn",
        email=GUARDIAN,
        birth_date=birth_date_years_ago(clock),
    )
    await _store_recipient(db, worker, request_id, "Parent@b\u00fccher.example")

    assert await worker.deliver_due() == 1

    [message] = mailbox.messages
    assert message.recipients == ["Parent@xn--bcher-kva.example"]
    parsed = message_from_bytes(message.raw, policy=email_policy.default)
    assert str(parsed["To"]) == "Parent@xn--bcher-kva.example"
