"""A request opened with the guardian's address offers the handoff too, but the handoff never
replaces that address: the one-time code goes to it, whoever typed the code from the child's
screen has to read that mailbox to go on, and the link emailed to it keeps working until a
decision. Only a request opened without an address takes one from the handoff, and never over
an address it already has."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import httpx

from service.clock import ManualClock
from service.dev.mailcatcher import Mailbox
from service.security.email_address import parse_email_address
from service.security.personal_data import DataProtector
from service.settings import Settings
from service.worker import Worker
from tests.support.flows import GRANT_ALL
from tests.support.guardian_client import csrf_token, page_csrf
from tests.support.handoff import (
    emailed_otp,
    enter_code,
    give_address,
    handoff_request_body,
    send_otp,
)

PARENT = "mum@example.com"
CHILD = "kid.own.mailbox@example.org"


async def open_with_address(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, subject_id: str
) -> dict[str, Any]:
    response = await client.post(
        "/v1/consent-requests",
        json=handoff_request_body(clock, subject_id, guardian_email=PARENT),
        headers=auth,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["handoff"]["code"]
    return created


async def emailed_link(worker: Worker, mailbox: Mailbox) -> str:
    assert await worker.deliver_due() == 1
    [message] = mailbox.to(PARENT)
    match = re.search(r"https?://[^/\s]+(/guardian/[A-Za-z0-9_-]{32,64})\b", message.text)
    assert match, message.text
    mailbox.clear()
    return match.group(1)


async def stored_address(db: asyncpg.Connection, request_id: uuid.UUID) -> tuple[Any, ...]:
    row = await db.fetchrow(
        "select guardian_email_enc, guardian_email_hash, guardian_ref, link_token_hash "
        "from consent_requests where id = $1",
        request_id,
    )
    assert row is not None
    return tuple(row)


async def test_the_handoff_proves_the_address_the_app_gave_and_never_replaces_it(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Mailbox,
    db: asyncpg.Connection,
) -> None:
    created = await open_with_address(client, auth, clock, "child-on-file")
    request_id = uuid.UUID(created["id"])
    original_link = await emailed_link(worker, mailbox)
    before = await stored_address(db, request_id)

    # The code from the child's screen sends the one-time code to the address on file at once.
    opened = await enter_code(client, created["handoff"]["code"])
    assert opened.status_code == 303, opened.text
    confirm_path = opened.headers["location"]
    assert confirm_path.endswith("/confirm")
    session_path = confirm_path.removesuffix("/confirm")
    page = await client.get(confirm_path)
    assert page.status_code == 200
    assert "m***@e***.com" in page.text
    assert "cannot be changed on this page" in page.text
    assert 'name="email"' not in page.text
    assert 'name="otp"' in page.text
    # The page after the code shows the same: no address is asked for.
    same = await client.get(session_path)
    assert same.status_code == 200
    assert 'name="email"' not in same.text
    first_otp, _ = await emailed_otp(worker, mailbox, PARENT)
    assert mailbox.to(CHILD) == []

    # A child posting their own address to the page gets nothing: the new code goes to the
    # address on file, and the first code stops working.
    resent = await give_address(client, session_path, CHILD)
    assert resent.status_code == 303, resent.text
    assert resent.headers["location"] == confirm_path
    otp, _ = await emailed_otp(worker, mailbox, PARENT)
    assert mailbox.to(CHILD) == []
    assert await stored_address(db, request_id) == before
    if otp != first_otp:
        stale = await send_otp(client, session_path, first_otp)
        assert stale.status_code == 422

    confirmed = await send_otp(client, session_path, otp)
    assert confirmed.status_code == 303, confirmed.text
    review_path = confirmed.headers["location"]
    assert re.fullmatch(r"/guardian/[A-Za-z0-9_-]{32,64}", review_path)
    assert review_path != original_link

    # Nothing about the request's address or its emailed link changed.
    assert await stored_address(db, request_id) == before
    handoff = await db.fetchrow(
        "select session_hash, email_enc, otp_hash, confirmed_at, proved_at "
        "from consent_handoffs where request_id = $1",
        request_id,
    )
    assert handoff is not None
    assert (handoff["session_hash"], handoff["email_enc"], handoff["otp_hash"]) == (
        None,
        None,
        None,
    )
    assert handoff["confirmed_at"] is None
    assert handoff["proved_at"] is not None
    assert (await client.get(session_path)).status_code == 410

    # Both links open the review until a decision; the page says the child gave the address.
    review = await client.get(review_path)
    assert review.status_code == 200
    assert "A child gave your email address" in review.text
    original = await client.get(original_link)
    assert original.status_code == 200
    assert 'name="decision"' in original.text

    granted = await client.post(
        original_link,
        data={
            **GRANT_ALL,
            "purposes": ["tutoring", "progress_reports"],
            "_csrf_token": csrf_token(original.text),
        },
    )
    assert granted.status_code == 200, granted.text
    check = await client.get(
        "/v1/consents/check",
        params={"subject_id": "child-on-file", "purpose": "tutoring"},
        headers=auth,
    )
    assert check.json()["allowed"] is True
    # The confirmation (email plus) goes to the address on file, never to the child's.
    assert await worker.deliver_due() >= 1
    assert mailbox.to(PARENT)
    assert mailbox.to(CHILD) == []

    actions = [
        record["action"]
        for record in await db.fetch(
            "select action from audit_events where request_id = $1 order by id", request_id
        )
    ]
    assert "consent_request.guardian_address_proved" in actions
    assert "consent_request.guardian_address_confirmed" not in actions


async def test_a_decision_on_the_handoffs_review_page_ends_the_emailed_link(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Mailbox,
) -> None:
    created = await open_with_address(client, auth, clock, "child-on-file-decided")
    original_link = await emailed_link(worker, mailbox)
    opened = await enter_code(client, created["handoff"]["code"])
    session_path = opened.headers["location"].removesuffix("/confirm")
    otp, _ = await emailed_otp(worker, mailbox, PARENT)
    review_path = (await send_otp(client, session_path, otp)).headers["location"]
    review = await client.get(review_path)
    denied = await client.post(
        review_path, data={"decision": "deny", "_csrf_token": csrf_token(review.text)}
    )
    assert denied.status_code == 200, denied.text
    status = await client.get(f"/v1/consent-requests/{created['id']}", headers=auth)
    assert status.json()["status"] == "denied"
    after = await client.get(original_link)
    assert 'name="decision"' not in after.text


async def test_an_address_is_set_only_on_a_request_without_one(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Mailbox,
    db: asyncpg.Connection,
    settings: Settings,
) -> None:
    """The statement that gives a request the handoff's address checks, in SQL, that it has
    none: a request that got one meanwhile keeps it, and the parent's code is refused."""
    response = await client.post(
        "/v1/consent-requests", json=handoff_request_body(clock, "child-race"), headers=auth
    )
    created = response.json()
    request_id = uuid.UUID(created["id"])
    opened = await enter_code(client, created["handoff"]["code"])
    session_path = opened.headers["location"]
    assert (await give_address(client, session_path, CHILD)).status_code == 303
    otp, _ = await emailed_otp(worker, mailbox, CHILD)

    # Meanwhile another confirmation gave the request an address (as a race would).
    protector = DataProtector(settings.data_key)
    other = protector.encrypt(PARENT.encode(), request_id.bytes)
    other_hash = protector.address_hashes(parse_email_address(PARENT))[0]
    await db.execute(
        "update consent_requests set guardian_email_enc = $2, guardian_email_hash = $3 "
        "where id = $1",
        request_id,
        other,
        other_hash,
    )
    refused = await send_otp(client, session_path, otp)
    assert refused.status_code == 410
    row = await db.fetchrow(
        "select guardian_email_enc, guardian_email_hash from consent_requests where id = $1",
        request_id,
    )
    assert row is not None
    assert (row["guardian_email_enc"], row["guardian_email_hash"]) == (other, other_hash)
    confirmed_at = await db.fetchval(
        "select confirmed_at from consent_handoffs where request_id = $1", request_id
    )
    assert confirmed_at is None


async def test_the_address_form_takes_an_address_with_spaces_around_it(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Mailbox,
    settings: Settings,
) -> None:
    response = await client.post(
        "/v1/consent-requests", json=handoff_request_body(clock, "child-trim"), headers=auth
    )
    opened = await enter_code(client, response.json()["handoff"]["code"])
    session_path = opened.headers["location"]
    token = await page_csrf(client, session_path)
    sent = await client.post(session_path, data={"email": f"  {PARENT} \n", "_csrf_token": token})
    assert sent.status_code == 303, sent.text
    otp, _ = await emailed_otp(worker, mailbox, PARENT)
    assert re.fullmatch(r"\d{6}", otp)


async def test_a_code_sent_to_the_address_on_file_stops_working_when_it_is_corrected(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Mailbox,
    db: asyncpg.Connection,
    settings: Settings,
) -> None:
    created = await open_with_address(client, auth, clock, "child-on-file-corrected")
    request_id = uuid.UUID(created["id"])
    await emailed_link(worker, mailbox)
    opened = await enter_code(client, created["handoff"]["code"])
    session_path = opened.headers["location"].removesuffix("/confirm")
    otp, _ = await emailed_otp(worker, mailbox, PARENT)

    # The address on file is corrected (as support's rectification does) before the code is
    # typed: the code went to the old mailbox and proves nothing now.
    corrected = DataProtector(settings.data_key).encrypt(b"dad@example.com", request_id.bytes)
    await db.execute(
        "update consent_requests set guardian_email_enc = $2 where id = $1", request_id, corrected
    )
    refused = await send_otp(client, session_path, otp)
    assert refused.status_code == 422
    assert "not the one we sent" in refused.text
    handoff_link = await db.fetchval(
        "select handoff_link_token_hash from consent_requests where id = $1", request_id
    )
    assert handoff_link is None
