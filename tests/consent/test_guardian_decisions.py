"""Guardian decisions over HTTP: grant, deny, refusals, dead links, scanners, races, limits.

Real PostgreSQL and a real SMTP server; time moves only through the ManualClock.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from service.clock import ManualClock
from service.security.tokens import new_link_token
from service.worker import Worker
from tests.support.dates import birth_date_years_ago
from tests.support.flows import ALL_PURPOSES, GRANT_ALL, check, request_link
from tests.support.guardian_client import (
    csrf_token,
    guardian_link,
    open_and_submit,
    path_of,
    review_csrf,
)
from tests.support.service import browser

GUARDIAN = "guardian.decides@example.com"
SUBJECT = "child-decisions-1"


async def open_request(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
) -> tuple[str, str]:
    """Open a consent request and return (request id, the guardian link from the email)."""
    return await request_link(
        client,
        worker,
        auth,
        mailbox,
        subject_id=SUBJECT,
        email=GUARDIAN,
        birth_date=birth_date_years_ago(clock),
        only_email=True,
    )


async def request_status(client: httpx.AsyncClient, auth: dict[str, str], request_id: str) -> str:
    response = await client.get(f"/v1/consent-requests/{request_id}", headers=auth)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


async def count(db: asyncpg.Connection, sql: str, *args: Any) -> int:
    value = await db.fetchval(sql, *args)
    assert isinstance(value, int)
    return value


async def audit_count(db: asyncpg.Connection) -> int:
    return await count(db, "select count(*) from audit_events")


async def consent_count(db: asyncpg.Connection) -> int:
    return await count(db, "select count(*) from consents")


# ---- deny and refusals ----------------------------------------------------------------------


async def test_deny_is_recorded_and_reported_by_check(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    request_id, link = await open_request(client, auth, worker, mailbox, clock)

    result = await open_and_submit(client, link, {"decision": "deny"})

    assert result.status_code == 200, result.text
    assert "Consent refused" in result.text
    assert await request_status(client, auth, request_id) == "denied"
    answer = await check(client, auth, SUBJECT)
    assert answer["status"] == "denied"
    assert answer["allowed"] is False
    assert answer["token"] is None
    event = await db.fetchrow(
        "select actor, from_status, to_status from audit_events "
        "where request_id = $1 and action = 'request.denied'",
        uuid.UUID(request_id),
    )
    assert event is not None
    assert (event["actor"], event["from_status"], event["to_status"]) == (
        "guardian",
        "pending",
        "denied",
    )
    assert await consent_count(db) == 0


async def test_grant_without_attestation_rerenders_the_form_and_decides_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    request_id, link = await open_request(client, auth, worker, mailbox, clock)
    events_before = await audit_count(db)

    result = await open_and_submit(
        client, link, {"decision": "grant", "purposes": ["tutoring", "newsletter"]}
    )

    assert result.status_code == 422
    assert result.headers["content-type"].startswith("text/html")
    assert "Please check the following:" in result.text
    assert 'name="attestation"' in result.text  # the form is shown again
    assert 'name="_csrf_token"' in result.text
    assert await request_status(client, auth, request_id) == "pending"
    assert await consent_count(db) == 0
    assert await audit_count(db) == events_before
    assert (await check(client, auth, SUBJECT))["status"] == "pending"

    # The link still works for a proper decision afterwards.
    granted = await open_and_submit(client, link, GRANT_ALL)
    assert granted.status_code == 200, granted.text
    assert await request_status(client, auth, request_id) == "granted"


async def test_refusing_the_required_purpose_is_a_denial(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    request_id, link = await open_request(client, auth, worker, mailbox, clock)

    result = await open_and_submit(
        client, link, {"decision": "grant", "purposes": ["newsletter"], "attestation": "yes"}
    )

    assert result.status_code == 200, result.text
    assert "Consent refused" in result.text
    assert await request_status(client, auth, request_id) == "denied"
    assert await consent_count(db) == 0
    assert (
        await count(db, "select count(*) from audit_events where action = 'consent.granted'") == 0
    )
    assert (
        await count(
            db,
            "select count(*) from audit_events where action = 'request.denied' and request_id = $1",
            uuid.UUID(request_id),
        )
        == 1
    )
    for purpose in ALL_PURPOSES:
        answer = await check(client, auth, SUBJECT, purpose)
        assert answer["status"] == "denied"
        assert answer["allowed"] is False


# ---- dead links -----------------------------------------------------------------------------


async def test_expired_link_shows_410_without_personal_data_and_refuses_post(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    request_id, link = await open_request(client, auth, worker, mailbox, clock)
    token = await review_csrf(client, link)  # the guardian opened the page before it expired
    status = await client.get(f"/v1/consent-requests/{request_id}", headers=auth)
    expires_at = status.json()["expires_at"]
    clock.set(datetime.fromisoformat(expires_at) + timedelta(seconds=1))

    page = await client.get(path_of(link))

    assert page.status_code == 410
    assert "This link has expired" in page.text
    for personal in (
        GUARDIAN,
        SUBJECT,
        birth_date_years_ago(clock),
        "Progress reports",
        "Newsletter",
    ):
        assert personal.lower() not in page.text.lower()
    assert 'name="attestation"' not in page.text

    posted = await client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token})
    assert posted.status_code == 410
    assert "This link has expired" in posted.text
    assert GUARDIAN not in posted.text
    assert await consent_count(db) == 0
    assert (await check(client, auth, SUBJECT))["allowed"] is False


async def test_reused_link_after_grant_is_410_used_and_one_consent_remains(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    _, link = await open_request(client, auth, worker, mailbox, clock)
    token = await review_csrf(client, link)
    first = await client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token})
    assert first.status_code == 200, first.text

    again = await client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token})
    deny = await client.post(path_of(link), data={"decision": "deny", "_csrf_token": token})
    reopened = await client.get(path_of(link))

    for response in (again, deny, reopened):
        assert response.status_code == 410
        assert "This link has already been used" in response.text
    assert await consent_count(db) == 1
    assert (
        await count(db, "select count(*) from audit_events where action = 'consent.granted'") == 1
    )
    assert (await check(client, auth, SUBJECT))["status"] == "granted"


@pytest.mark.parametrize("token", [new_link_token(), "not-a-token", "x" * 200])
async def test_unknown_token_is_404(client: httpx.AsyncClient, token: str) -> None:
    page = await client.get(f"/guardian/{token}")
    assert page.status_code == 404
    assert "This link is not valid" in page.text

    # A POST to an unknown link is refused the same way (a CSRF cookie from the GET above).
    csrf = client.cookies.get("csrftoken")
    assert csrf is not None
    posted = await client.post(f"/guardian/{token}", data={**GRANT_ALL, "_csrf_token": csrf})
    assert posted.status_code == 404
    assert "This link is not valid" in posted.text


async def test_link_scanner_gets_and_heads_change_nothing(
    client: httpx.AsyncClient,
    app: Litestar,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    request_id, link = await open_request(client, auth, worker, mailbox, clock)
    events_before = await audit_count(db)
    row_before = await db.fetchrow(
        "select status, failed_submissions, updated_at, link_token_hash from consent_requests "
        "where id = $1",
        uuid.UUID(request_id),
    )

    # Scanners fetch with their own (cookie-less) clients, repeatedly.
    async with browser(app) as scanner:
        for _ in range(5):
            fetched = await scanner.get(path_of(link))
            assert fetched.status_code == 200
            assert 'name="attestation"' in fetched.text
            head = await scanner.head(path_of(link))
            assert head.status_code in {200, 405}
            scanner.cookies.clear()

    assert await audit_count(db) == events_before
    row_after = await db.fetchrow(
        "select status, failed_submissions, updated_at, link_token_hash from consent_requests "
        "where id = $1",
        uuid.UUID(request_id),
    )
    assert row_after == row_before
    assert await request_status(client, auth, request_id) == "pending"
    assert await consent_count(db) == 0

    # The guardian can still use the link afterwards.
    result = await open_and_submit(client, link, GRANT_ALL)
    assert result.status_code == 200, result.text
    assert await request_status(client, auth, request_id) == "granted"


# ---- races ----------------------------------------------------------------------------------


@pytest.mark.parametrize("clients", ["one browser", "two browsers"])
async def test_double_submitted_grant_yields_one_consent(
    client: httpx.AsyncClient,
    app: Litestar,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    clients: str,
) -> None:
    request_id, link = await open_request(client, auth, worker, mailbox, clock)
    async with browser(app) as other:
        second = other if clients == "two browsers" else client
        first_form = {**GRANT_ALL, "_csrf_token": await review_csrf(client, link)}
        second_form = {**GRANT_ALL, "_csrf_token": await review_csrf(second, link)}

        responses = await asyncio.gather(
            client.post(path_of(link), data=first_form),
            second.post(path_of(link), data=second_form),
        )

    assert sorted(r.status_code for r in responses) == [200, 410], [r.text for r in responses]
    assert (
        await count(
            db, "select count(*) from consents where request_id = $1", uuid.UUID(request_id)
        )
        == 1
    )
    assert (
        await count(db, "select count(*) from audit_events where action = 'consent.granted'") == 1
    )
    assert await count(db, "select count(*) from outbox where topic = 'consent_confirmation'") == 1
    assert await request_status(client, auth, request_id) == "granted"


# ---- limits ---------------------------------------------------------------------------------


async def test_five_failed_submissions_lock_the_link(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    request_id, link = await open_request(client, auth, worker, mailbox, clock)
    token = await review_csrf(client, link)
    forged = {**GRANT_ALL, "_csrf_token": "0" * 128}  # fails the CSRF check

    statuses = [(await client.post(path_of(link), data=forged)).status_code for _ in range(5)]

    assert statuses == [403, 403, 403, 403, 429]
    valid = await client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token})
    assert valid.status_code == 429
    assert "This link has been locked" in valid.text
    reopened = await client.get(path_of(link))
    assert reopened.status_code == 429
    assert "This link has been locked" in reopened.text
    assert await request_status(client, auth, request_id) == "pending"
    assert await consent_count(db) == 0
    assert (await check(client, auth, SUBJECT))["allowed"] is False


async def test_guardian_pages_carry_security_headers(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
) -> None:
    _, link = await open_request(client, auth, worker, mailbox, clock)
    review = await client.get(path_of(link))
    result = await client.post(
        path_of(link), data={**GRANT_ALL, "_csrf_token": csrf_token(review.text)}
    )
    used = await client.get(path_of(link))
    unknown = await client.get(f"/guardian/{new_link_token()}")

    for response, expected in ((review, 200), (result, 200), (used, 410), (unknown, 404)):
        assert response.status_code == expected
        headers = response.headers
        assert headers["referrer-policy"] == "no-referrer"
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in [part.strip() for part in csp.split(";")]
        assert "no-store" in headers["cache-control"]
        assert headers["content-type"].startswith("text/html")


async def test_post_without_csrf_token_is_403_and_changes_nothing(
    client: httpx.AsyncClient,
    app: Litestar,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    request_id, link = await open_request(client, auth, worker, mailbox, clock)
    real_token = await review_csrf(client, link)  # the browser holds a CSRF cookie
    events_before = await audit_count(db)

    missing = await client.post(path_of(link), data=GRANT_ALL)
    forged = await client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": "0" * 128})
    async with browser(app) as attacker:  # a cross-site form post carries no cookie of ours
        no_cookie = await attacker.post(
            path_of(link), data={**GRANT_ALL, "_csrf_token": real_token}
        )

    for response in (missing, forged, no_cookie):
        assert response.status_code == 403
        # a person in a browser gets a page that says what to do, with the page headers
        assert response.headers["content-type"].startswith("text/html")
        assert "reload the page" in response.text
        assert response.headers["referrer-policy"] == "no-referrer"
    assert await request_status(client, auth, request_id) == "pending"
    assert await consent_count(db) == 0
    assert await audit_count(db) == events_before
    # each refused submission is a strike against the link (five lock it)
    failed = await count(
        db,
        "select failed_submissions from consent_requests where id = $1",
        uuid.UUID(request_id),
    )
    assert failed == 3


async def test_thirty_submissions_per_minute_per_client(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    # Start a fresh one-minute window so all 31 posts fall into the same window.
    now = clock.now()
    clock.set(now.replace(second=0) + timedelta(minutes=1))
    request_id, link = await open_request(client, auth, worker, mailbox, clock)
    token = await review_csrf(client, link)

    for _ in range(30):
        probe = await client.post(
            f"/guardian/{new_link_token()}", data={"decision": "deny", "_csrf_token": token}
        )
        assert probe.status_code == 404
    limited = await client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token})

    assert limited.status_code == 429
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert limited.headers["referrer-policy"] == "no-referrer"
    assert await request_status(client, auth, request_id) == "pending"
    assert await consent_count(db) == 0

    # The next minute the same client may submit again; the link was not used up.
    clock.advance(timedelta(seconds=retry_after))
    granted = await client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token})
    assert granted.status_code == 200, granted.text
    assert await request_status(client, auth, request_id) == "granted"


async def test_a_consent_replaced_by_another_guardians_is_told_to_its_guardian(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    db: asyncpg.Connection,
) -> None:
    subject = {"subject_id": "child-shared", "birth_date": "2016-02-02", "country": "SI"}
    first = {**subject, "guardian_email": "mother@example.com", "purposes": ["tutoring"]}
    second = {**subject, "guardian_email": "stranger@example.com", "purposes": ["tutoring"]}
    grant = {"decision": "grant", "purposes": ["tutoring"], "attestation": "yes"}

    for body in (first, second):
        created = await client.post("/v1/consent-requests", json=body, headers=auth)
        assert created.status_code == 201, created.text
        await worker.deliver_due()
        [request_email] = [
            m for m in mailbox.to(body["guardian_email"]) if "/guardian/withdraw/" not in m.text
        ][-1:]
        decided = await open_and_submit(client, guardian_link(request_email.text), grant)
        assert decided.status_code == 200, decided.text
        await worker.deliver_due()

    statuses = [
        r["status"] for r in await db.fetch("select status from consents order by granted_at")
    ]
    assert statuses == ["superseded", "granted"]
    told = [m for m in mailbox.to("mother@example.com") if "replaced" in m.subject]
    assert len(told) == 1
    assert "another guardian" in told[0].subject
    assert "stranger@example.com" not in told[0].text  # the other guardian stays private
    assert not [m for m in mailbox.to("stranger@example.com") if "replaced" in m.subject]
