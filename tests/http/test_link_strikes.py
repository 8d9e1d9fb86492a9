"""A guardian link's five strikes count only submissions the CSRF check refuses: honest
mistakes on the review or withdrawal form (no attestation, nothing ticked) never lock a link,
five forged or cookie-less submissions do. A withdrawal link locks for an hour only."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from service.clock import ManualClock
from service.consent.endings import WITHDRAWAL_LOCK
from tests.support.dates import SECOND
from tests.support.flows import GRANT_ALL, check, granted_consent, open_request
from tests.support.guardian_client import csrf_token, is_html, path_of
from tests.support.service import Service, browser

SUBJECT = "child-strikes-1"
GUARDIAN = "strikes.parent@example.com"
FORGED = "0" * 128
LOCKED_TEXT = {
    "review": "This link has been locked",
    "withdrawal": "This link has been locked for a while",
}


async def review_strikes(db: asyncpg.Connection, request_id: str) -> int:
    strikes: int = await db.fetchval(
        "select failed_submissions from consent_requests where id = $1", uuid.UUID(request_id)
    )
    return strikes


async def withdrawal_strikes(db: asyncpg.Connection) -> int:
    strikes: int = await db.fetchval("select withdraw_failed_submissions from consents")
    return strikes


async def test_five_honest_mistakes_then_a_valid_grant_succeeds(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    request_id, link = await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    page = await svc.client.get(path_of(link))
    token = csrf_token(page.text)
    mistakes = [
        {"decision": "grant", "purposes": ["tutoring"]},  # no attestation
        {"decision": "grant", "purposes": ["tutoring"]},
        {"decision": "", "attestation": "yes"},  # no decision
        {"decision": "grant", "purposes": ["tutoring", "pony"], "attestation": "yes"},
        {"decision": "maybe"},
        {"decision": "grant"},
    ]
    for form in mistakes:
        response = await svc.client.post(path_of(link), data={**form, "_csrf_token": token})
        assert response.status_code == 422, response.text
        assert 'class="alert"' in response.text
    assert await review_strikes(db, request_id) == 0

    granted = await svc.client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token})
    assert granted.status_code == 200, granted.text
    assert (await check(svc.client, api, SUBJECT))["allowed"] is True


@pytest.mark.parametrize("how", ["forged", "missing", "no-cookie"])
async def test_five_refused_csrf_submissions_lock_the_review_link(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection, how: str
) -> None:
    request_id, link = await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    page = await svc.client.get(path_of(link))
    real = csrf_token(page.text)
    events = await db.fetchval("select count(*) from audit_events")

    async with browser(svc.app) as cookieless:
        sender, form = {
            "forged": (svc.client, {**GRANT_ALL, "_csrf_token": FORGED}),
            "missing": (svc.client, GRANT_ALL),
            "no-cookie": (cookieless, {**GRANT_ALL, "_csrf_token": real}),
        }[how]
        statuses = [(await sender.post(path_of(link), data=form)).status_code for _ in range(5)]

    assert statuses == [403, 403, 403, 403, 429]
    assert await review_strikes(db, request_id) == 5
    valid = await svc.client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": real})
    assert valid.status_code == 429
    assert is_html(valid)
    assert LOCKED_TEXT["review"] in valid.text
    assert int(valid.headers["retry-after"]) > 0
    assert (await check(svc.client, api, SUBJECT))["status"] == "pending"
    assert await db.fetchval("select count(*) from audit_events") == events


async def test_five_honest_withdrawal_mistakes_then_a_valid_withdrawal_succeeds(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    page = await svc.client.get(granted.withdraw_path)
    token = csrf_token(page.text)
    mistakes = [
        {"confirm": "yes"},  # nothing ticked
        {"confirm": "yes"},
        {"purposes": ["newsletter"]},  # not confirmed
        {"confirm": "yes", "purposes": ["pony"]},
        {"confirm": "yes", "purposes": ["newsletter", "pony"]},
        {"confirm": "yes"},
    ]
    for form in mistakes:
        response = await svc.client.post(granted.withdraw_path, data={**form, "_csrf_token": token})
        assert response.status_code == 422, response.text
    assert await withdrawal_strikes(db) == 0

    done = await svc.client.post(
        granted.withdraw_path,
        data={"confirm": "yes", "purposes": ["newsletter"], "_csrf_token": token},
    )
    assert done.status_code == 200, done.text
    assert (await check(svc.client, api, SUBJECT, "newsletter"))["allowed"] is False
    assert (await check(svc.client, api, SUBJECT, "tutoring"))["allowed"] is True


async def test_five_refused_csrf_withdrawals_lock_the_link_for_an_hour(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    page = await svc.client.get(granted.withdraw_path)
    real = csrf_token(page.text)
    forged = {"confirm": "yes", "purposes": ["newsletter"], "_csrf_token": FORGED}

    statuses = [
        (await svc.client.post(granted.withdraw_path, data=forged)).status_code for _ in range(5)
    ]

    assert statuses == [403, 403, 403, 403, 429]
    valid = {"confirm": "yes", "purposes": ["newsletter"], "_csrf_token": real}
    locked = await svc.client.post(granted.withdraw_path, data=valid)
    assert locked.status_code == 429
    assert LOCKED_TEXT["withdrawal"] in locked.text
    assert "try again in an hour" in locked.text
    assert int(locked.headers["retry-after"]) == int(WITHDRAWAL_LOCK.total_seconds())
    reopened = await svc.client.get(granted.withdraw_path)
    assert reopened.status_code == 429
    assert (await check(svc.client, api, SUBJECT, "newsletter"))["allowed"] is True

    # Withdrawing must stay possible: the lock lifts by itself, and the count starts again.
    clock.advance(WITHDRAWAL_LOCK + SECOND)
    assert await withdrawal_strikes(db) == 0
    done = await svc.client.post(granted.withdraw_path, data=valid)
    assert done.status_code == 200, done.text
    assert (await check(svc.client, api, SUBJECT, "newsletter"))["allowed"] is False


async def test_a_refused_submission_to_a_link_that_leads_nowhere_counts_nowhere(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    unknown = await svc.client.post(
        "/guardian/withdraw/" + "A" * 43, data={"confirm": "yes", "_csrf_token": FORGED}
    )
    assert unknown.status_code == 403
    assert is_html(unknown)
    assert await withdrawal_strikes(db) == 0
