"""A child who reaches the age of consent while a request waits: the guardian's link then
shows that consent is no longer needed (in the request's language, on GET and on POST), and
the first POST closes the request; concurrent decisions are both refused.

Real PostgreSQL and a real SMTP server; time moves only through the ManualClock.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from service.clock import ManualClock
from service.worker import Worker
from tests.support.dates import birth_date_turning
from tests.support.flows import GRANT_ALL, create_request
from tests.support.guardian_client import guardian_link, is_html, path_of, review_csrf
from tests.support.stored_data import request_row

NOT_REQUIRED_EN = "Your consent is no longer needed"
NOT_REQUIRED_SL = "Vaše soglasje ni več potrebno"


# ---- a decision after the child came of age --------------------------------------------------


async def test_grant_after_the_child_came_of_age_shows_not_required_and_expires_the_request(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    email = "coming.of.age@example.com"
    birth = birth_date_turning(clock, 15, in_days=2)
    request_id = await create_request(
        client, auth, subject_id="child-of-age-1", email=email, birth_date=birth.isoformat()
    )
    assert await worker.deliver_due() == 1
    link = guardian_link(mailbox.to(email)[-1].text)
    token = await review_csrf(client, link)

    clock.advance(timedelta(days=3))  # 15 now, but the 7-day link is still valid
    expires_at = await db.fetchval(
        "select expires_at from consent_requests where id = $1", request_id
    )
    assert clock.now() < expires_at

    response = await client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token})

    assert response.status_code == 410, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert NOT_REQUIRED_EN in response.text
    assert "child-of-age-1" not in response.text
    row = await db.fetchrow(
        "select status, decided_at from consent_requests where id = $1", request_id
    )
    assert row is not None
    assert row["status"] == "expired"
    assert row["decided_at"] == clock.now()
    assert await db.fetchval("select count(*) from consents") == 0
    assert (
        await db.fetchval("select count(*) from outbox where topic = 'consent_confirmation'") == 0
    )
    event = await db.fetchrow(
        "select actor, from_status, to_status from audit_events "
        "where request_id = $1 and action = 'request.expired'",
        request_id,
    )
    assert event is not None
    assert (event["actor"], event["from_status"], event["to_status"]) == (
        "system",
        "pending",
        "expired",
    )
    status = await client.get(f"/v1/consent-requests/{request_id}", headers=auth)
    assert status.status_code == 200, status.text
    assert status.json()["status"] == "expired"

    # The link is used up now: a second post (or a deny) is a 410 page, never a 500.
    again = await client.post(path_of(link), data={"decision": "deny", "_csrf_token": token})
    assert again.status_code == 410, again.text
    assert await db.fetchval("select count(*) from consents") == 0
    assert (
        await db.fetchval(
            "select count(*) from audit_events where action = 'request.expired' "
            "and request_id = $1",
            request_id,
        )
        == 1
    )


async def test_concurrent_decisions_after_the_child_came_of_age_are_both_410(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    email = "coming.of.age.race@example.com"
    birth = birth_date_turning(clock, 15, in_days=2)
    request_id = await create_request(
        client, auth, subject_id="child-of-age-2", email=email, birth_date=birth.isoformat()
    )
    assert await worker.deliver_due() == 1
    link = guardian_link(mailbox.to(email)[-1].text)
    token = await review_csrf(client, link)
    clock.advance(timedelta(days=3))

    answers = await asyncio.gather(
        client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token}),
        client.post(path_of(link), data={"decision": "deny", "_csrf_token": token}),
    )

    assert [a.status_code for a in answers] == [410, 410], [a.text[:300] for a in answers]
    assert any(NOT_REQUIRED_EN in a.text for a in answers)
    assert await db.fetchval("select count(*) from consents") == 0
    assert (
        await db.fetchval("select status from consent_requests where id = $1", request_id)
        == "expired"
    )
    assert (
        await db.fetchval(
            "select count(*) from audit_events where action like 'request.%' "
            "and request_id = $1 and to_status <> 'pending'",
            request_id,
        )
        == 1
    )


# ---- shown on GET, acted on by POST ----------------------------------------------------------


async def test_coming_of_age_is_shown_on_get_in_the_requests_language_and_closed_by_post(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    email = "polnoletnost@example.com"
    birth = birth_date_turning(clock, 15, in_days=2)
    request_id = await create_request(
        client,
        auth,
        subject_id="child-of-age-sl",
        email=email,
        birth_date=birth.isoformat(),
        locale="sl",
    )
    assert await worker.deliver_due() == 1
    link = guardian_link(mailbox.to(email)[-1].text)
    token = await review_csrf(client, link)

    clock.advance(timedelta(days=3))  # the child is 15 now; the 7-day link is still valid
    assert clock.now() < (await request_row(db, request_id))["expires_at"]

    for _ in range(2):  # mail scanners fetch links more than once
        shown = await client.get(path_of(link))
        assert shown.status_code == 410, shown.text
        assert is_html(shown)
        assert '<html lang="sl">' in shown.text
        assert NOT_REQUIRED_SL in shown.text
        assert NOT_REQUIRED_EN not in shown.text
        assert "child-of-age-sl" not in shown.text
    # A GET changes nothing.
    row = await request_row(db, request_id)
    assert row["status"] == "pending"
    assert row["decided_at"] is None
    assert row["guardian_email_enc"] is not None
    assert row["failed_submissions"] == 0
    assert (
        await db.fetchval("select count(*) from audit_events where action = 'request.expired'") == 0
    )

    posted = await client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token})
    assert posted.status_code == 410, posted.text
    assert '<html lang="sl">' in posted.text
    assert NOT_REQUIRED_SL in posted.text
    closed = await request_row(db, request_id)
    assert closed["status"] == "expired"
    assert closed["decided_at"] == clock.now()
    assert closed["guardian_email_enc"] is None
    assert closed["guardian_email_hash"] is None
    assert closed["birth_date"] is None
    assert await db.fetchval("select count(*) from consents") == 0
