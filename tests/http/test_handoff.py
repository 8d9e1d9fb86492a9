"""The handoff over HTTP: a request without the guardian's address, its code typed on the
parent's own device, the parent's address confirmed by an emailed one-time code, then the usual
review and decision. Codes are kept only as keyed hashes, work once, expire, and wrong ones
count: per client address for the handoff code, per request for the emailed code."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from service.clock import ManualClock
from service.dev.mailcatcher import Mailbox
from service.http import handoff_qr
from service.settings import Settings
from service.worker import Worker
from tests.support.flows import GRANT_ALL
from tests.support.guardian_client import csrf_token
from tests.support.handoff import (
    emailed_otp,
    enter_code,
    give_address,
    handoff_request_body,
    send_otp,
)

PARENT = "handoff.parent@example.com"
CODE_SHAPE = re.compile(r"^[A-HJKMNP-Z2-9]{4}-[A-HJKMNP-Z2-9]{4}$")
SVG = "{http://www.w3.org/2000/svg}"


async def open_request(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, subject_id: str
) -> dict[str, Any]:
    response = await client.post(
        "/v1/consent-requests", json=handoff_request_body(clock, subject_id), headers=auth
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_request_without_the_guardians_address_offers_the_handoff_only(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    settings: Settings,
    db: asyncpg.Connection,
    worker: Worker,
) -> None:
    created = await open_request(client, auth, clock, "child-handoff-only")
    handoff = created["handoff"]
    assert CODE_SHAPE.match(handoff["code"]), handoff
    assert handoff["url"] == f"{settings.public_url}/guardian/code"
    assert handoff["expires_at"] == (clock.now() + timedelta(minutes=30)).isoformat().replace(
        "+00:00", "Z"
    )
    assert created["status"] == "pending"

    # Nobody to email: nothing is queued, and the request holds no address.
    assert await worker.deliver_due() == 0
    row = await db.fetchrow(
        "select guardian_email_enc, guardian_email_hash from consent_requests where id = $1",
        uuid.UUID(created["id"]),
    )
    assert row is not None
    assert (row["guardian_email_enc"], row["guardian_email_hash"]) == (None, None)

    # Only a keyed hash of the code is stored, nowhere the code itself.
    stored = await db.fetchrow(
        "select code_hash from consent_handoffs where request_id = $1", uuid.UUID(created["id"])
    )
    assert stored is not None
    assert len(stored["code_hash"]) == 32
    plain = handoff["code"].replace("-", "")
    dump = await db.fetchval(
        "select string_agg(t::text, ' ') from (select * from consent_handoffs) t"
    )
    assert plain not in dump
    assert handoff["code"] not in dump


async def test_with_the_guardians_address_the_email_goes_out_and_the_handoff_is_offered(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Mailbox,
) -> None:
    response = await client.post(
        "/v1/consent-requests",
        json=handoff_request_body(clock, "child-both-channels", guardian_email=PARENT),
        headers=auth,
    )
    assert response.status_code == 201, response.text
    assert CODE_SHAPE.match(response.json()["handoff"]["code"])
    assert await worker.deliver_due() == 1
    [message] = mailbox.to(PARENT)
    assert "/guardian/" in message.text


async def test_the_qr_code_is_an_svg_of_the_handoff_url(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    settings: Settings,
) -> None:
    created = await open_request(client, auth, clock, "child-qr")
    path = f"/v1/consent-requests/{created['id']}/handoff.svg"

    unauthenticated = await client.get(path)
    assert unauthenticated.status_code == 401

    answer = await client.get(path, headers=auth)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("image/svg+xml")
    assert answer.headers["cache-control"] == "no-store"
    root = ET.fromstring(answer.content)  # noqa: S314 - our own answer, in a test
    assert root.tag == f"{SVG}svg"
    # the light background and the dark modules
    assert [bool(path.get("d")) for path in root.iter(f"{SVG}path")] == [True, True]
    # The same modules as a QR code of the URL (and not of the code: that is typed by hand).
    url = f"{settings.public_url}/guardian/code"
    assert answer.content == handoff_qr.svg(url, "en")
    assert created["handoff"]["code"].encode() not in answer.content

    unknown = await client.get(f"/v1/consent-requests/{uuid.uuid4()}/handoff.svg", headers=auth)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")

    cancelled = await client.post(f"/v1/consent-requests/{created['id']}/cancel", headers=auth)
    assert cancelled.status_code == 200
    ended = await client.get(path, headers=auth)
    assert ended.status_code == 409
    assert ended.json()["current_status"] == "cancelled"


async def test_the_whole_handoff_over_http_ends_in_a_consent(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Mailbox,
    db: asyncpg.Connection,
) -> None:
    created = await open_request(client, auth, clock, "child-handoff-http")
    request_id = uuid.UUID(created["id"])
    code = created["handoff"]["code"]

    # Typed in small letters and without the dash, it still works.
    opened = await enter_code(client, code.replace("-", "").lower())
    assert opened.status_code == 303, opened.text
    session_path = opened.headers["location"]
    assert session_path.startswith("/guardian/code/")

    # The code works once: the QR code is gone, and typing it again says so.
    svg = await client.get(f"/v1/consent-requests/{request_id}/handoff.svg", headers=auth)
    assert svg.status_code == 410
    again = await enter_code(client, code)
    assert again.status_code == 410
    assert "already been used" in again.text

    # Viewing the address page twice changes nothing.
    for _ in range(2):
        assert (await client.get(session_path)).status_code == 200

    # Before an address was given, the page of the emailed code asks for the address.
    early = await client.get(f"{session_path}/confirm")
    assert early.status_code == 200
    assert 'name="email"' in early.text

    invalid = await give_address(client, session_path, "not an address")
    assert invalid.status_code == 422
    assert 'aria-invalid="true"' in invalid.text

    sent = await give_address(client, session_path, PARENT)
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"] == f"{session_path}/confirm"
    # Opening (or reloading) the page of the emailed code sends nothing more.
    for _ in range(2):
        confirm_page = await client.get(sent.headers["location"])
        assert confirm_page.status_code == 200
        assert "h***@e***.com" in confirm_page.text
    otp, text = await emailed_otp(worker, mailbox, PARENT)
    assert len(mailbox.to(PARENT)) == 1
    # Whoever typed the address may be the child: the email says whom the code is for.
    assert "Enter the code only if you are the child's parent or legal guardian" in text
    assert "If you are the child: please do not enter the code" in text

    wrong = f"{(int(otp) + 1) % 1_000_000:06d}"
    refused = await send_otp(client, session_path, wrong)
    assert refused.status_code == 422
    assert "not the one we sent" in refused.text

    confirmed = await send_otp(client, session_path, otp)
    assert confirmed.status_code == 303, confirmed.text
    review_path = confirmed.headers["location"]
    assert re.fullmatch(r"/guardian/[A-Za-z0-9_-]{32,64}", review_path)

    # The address is now the request's guardian address, encrypted and looked up by hash.
    row = await db.fetchrow(
        "select guardian_email_enc, guardian_email_hash from consent_requests where id = $1",
        request_id,
    )
    assert row is not None
    assert row["guardian_email_enc"]
    assert row["guardian_email_hash"]
    assert PARENT.encode() not in row["guardian_email_enc"]
    leftover = await db.fetchrow(
        "select session_hash, email_enc, otp_hash, confirmed_at from consent_handoffs "
        "where request_id = $1",
        request_id,
    )
    assert leftover is not None
    assert (leftover["session_hash"], leftover["email_enc"], leftover["otp_hash"]) == (
        None,
        None,
        None,
    )
    assert leftover["confirmed_at"] is not None
    # The page after the code is closed for good.
    assert (await client.get(session_path)).status_code == 410

    review = await client.get(review_path)
    assert review.status_code == 200
    # The page says how the address came (the parent's own), not that the child gave it.
    assert "you confirmed your email address with the code from the child" in review.text
    assert "A child gave your email address" not in review.text
    granted = await client.post(
        review_path,
        data={
            **GRANT_ALL,
            "purposes": ["tutoring", "progress_reports"],
            "_csrf_token": csrf_token(review.text),
        },
    )
    assert granted.status_code == 200, granted.text
    check = await client.get(
        "/v1/consents/check",
        params={"subject_id": "child-handoff-http", "purpose": "tutoring"},
        headers=auth,
    )
    assert check.json()["allowed"] is True

    # The email-plus confirmation goes to the confirmed address.
    mailbox.clear()
    assert await worker.deliver_due() >= 1
    assert mailbox.to(PARENT)

    actions = [
        record["action"]
        for record in await db.fetch(
            "select action from audit_events where request_id = $1 order by id", request_id
        )
    ]
    assert "consent_request.handoff_opened" in actions
    assert "consent_request.handoff_code_sent" in actions
    assert "consent_request.guardian_address_confirmed" in actions


async def test_wrong_codes_count_per_client_address(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    created = await open_request(client, auth, clock, "child-handoff-guessing")
    for _ in range(10):
        wrong = await enter_code(client, "AAAA-AAAA")
        assert wrong.status_code == 422
        assert "was not recognised" in wrong.text
    # Now even the right code is not checked from this address, until the window passes.
    blocked = await enter_code(client, created["handoff"]["code"])
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    svg = await client.get(f"/v1/consent-requests/{created['id']}/handoff.svg", headers=auth)
    assert svg.status_code == 200

    clock.advance(timedelta(seconds=int(blocked.headers["retry-after"])))
    fresh = await open_request(client, auth, clock, "child-handoff-guessing")
    opened = await enter_code(client, fresh["handoff"]["code"])
    assert opened.status_code == 303


async def test_wrong_one_time_codes_lock_the_handoff(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Mailbox,
    db: asyncpg.Connection,
) -> None:
    created = await open_request(client, auth, clock, "child-handoff-lock")
    opened = await enter_code(client, created["handoff"]["code"])
    session_path = opened.headers["location"]
    assert (await give_address(client, session_path, PARENT)).status_code == 303
    otp, _ = await emailed_otp(worker, mailbox, PARENT)
    wrong = f"{(int(otp) + 1) % 1_000_000:06d}"
    for _ in range(4):
        assert (await send_otp(client, session_path, wrong)).status_code == 422
    token = csrf_token((await client.get(session_path)).text)
    locked = await client.post(f"{session_path}/confirm", data={"otp": wrong, "_csrf_token": token})
    assert locked.status_code == 429
    assert "locked" in locked.text
    # Locked for good: the right code does nothing now, and the unconfirmed address is gone.
    late = await client.post(f"{session_path}/confirm", data={"otp": otp, "_csrf_token": token})
    assert late.status_code == 410
    row = await db.fetchrow(
        "select email_enc, strikes from consent_handoffs where request_id = $1",
        uuid.UUID(created["id"]),
    )
    assert row is not None
    assert row["email_enc"] is None
    assert row["strikes"] == 5
    status = await client.get(f"/v1/consent-requests/{created['id']}", headers=auth)
    assert status.json()["status"] == "pending"
    # The code from the child's screen says it is locked.
    again = await enter_code(client, created["handoff"]["code"])
    assert again.status_code == 429
    assert "This code is locked" in again.text


async def test_an_expired_code_says_so_and_the_qr_code_is_gone(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    created = await open_request(client, auth, clock, "child-handoff-expired")
    clock.advance(timedelta(minutes=30, seconds=1))
    expired = await enter_code(client, created["handoff"]["code"])
    assert expired.status_code == 410
    assert "has expired" in expired.text
    svg = await client.get(f"/v1/consent-requests/{created['id']}/handoff.svg", headers=auth)
    assert svg.status_code == 410
    assert svg.headers["content-type"].startswith("application/problem+json")


async def test_a_replay_answers_a_new_code_that_replaces_the_first(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    headers = {**auth, "Idempotency-Key": "signup-handoff-1"}
    request = handoff_request_body(clock, "child-handoff-replay")
    first = await client.post("/v1/consent-requests", json=request, headers=headers)
    assert first.status_code == 201
    replay = await client.post("/v1/consent-requests", json=request, headers=headers)
    assert replay.status_code == 201
    assert replay.json()["id"] == first.json()["id"]
    first_code, new_code = first.json()["handoff"]["code"], replay.json()["handoff"]["code"]
    assert new_code != first_code
    assert replay.json()["handoff"]["expires_at"] == first.json()["handoff"]["expires_at"]

    # The stored answer holds no code.
    stored = await db.fetchval("select response::text from idempotency_keys")
    assert first_code not in stored
    assert new_code not in stored

    assert (await enter_code(client, first_code)).status_code == 422
    assert (await enter_code(client, new_code)).status_code == 303

    # Once the code was used, a replay offers no handoff at all.
    used = await client.post("/v1/consent-requests", json=request, headers=headers)
    assert used.status_code == 201
    assert "handoff" not in used.json()
    assert used.json()["id"] == first.json()["id"]
