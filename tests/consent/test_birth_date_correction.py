"""Staff correct a child's birth date (GDPR Art. 16): the age of consent and the consent's end
are recomputed; a child who needs no guardian's consent ends the consent (``not_required``),
which the check answers and the app learns by a signed webhook; a pending request no longer
needed is closed and its guardian's address deleted. The birth date is kept only where the
design keeps it (a pending request).

Real PostgreSQL, the real SMTP server and a real webhook receiver; the ManualClock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from service.clock import ManualClock
from service.db.audit_events import verify_chain
from tests.support.dates import birth_date_turning, birth_date_years_ago, local_midnight
from tests.support.flows import check, create_request, granted_consent
from tests.support.service import Service
from tests.support.webhooks import WebhookReceiver, verified_payload, webhook_env

GUARDIAN = "birthday.parent@example.com"
SI_AGE = 15  # ZVOP-2 Art. 8


@pytest.fixture
def svc_env(receiver: WebhookReceiver) -> dict[str, str]:
    return webhook_env(receiver)


async def _correct(svc: Service, subject: str, **body: Any) -> Any:
    return await svc.client.post(
        f"/v1/subjects/{subject}/birth-date", json=body, headers=svc.staff("support", sub="carol")
    )


async def test_an_older_child_ends_the_consent_not_required_and_the_app_is_told(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    receiver: WebhookReceiver,
    db: asyncpg.Connection,
) -> None:
    subject = "child-birthday-older"
    granted = await granted_consent(svc, api, mailbox, subject_id=subject, email=GUARDIAN)
    await svc.worker.deliver_due()

    corrected = await _correct(svc, subject, birth_date=birth_date_years_ago(svc.clock, 16))
    assert corrected.status_code == 200, corrected.text
    body = corrected.json()
    assert body["consent_required"] is False
    assert (body["consent_id"], body["consent_status"]) == (granted.consent_id, "not_required")
    assert body["age_of_consent"] == SI_AGE

    for purpose in ("tutoring", "newsletter"):
        answer = await check(svc.client, api, subject, purpose)
        assert (answer["status"], answer["allowed"], answer["token"]) == (
            "not_required",
            False,
            None,
        )
    row = await db.fetchrow("select status, end_reason from consents")
    assert (row["status"], row["end_reason"]) == ("not_required", "not_required")

    await svc.worker.deliver_due()
    [delivery] = receiver.of_type("consent.not_required")
    data = verified_payload(delivery)["data"]
    assert (data["consent_id"], data["status"], data["reason"]) == (
        granted.consent_id,
        "not_required",
        "not_required",
    )

    event = await db.fetchrow("select * from audit_events where action = 'consent.not_required'")
    assert event["actor"] == "staff:carol"
    corrected_event = await db.fetchrow(
        "select * from audit_events where action = 'subject.birth_date_corrected'"
    )
    assert corrected_event["actor"] == "staff:carol"
    [tracked] = await db.fetch("select kind, status, handler from data_requests")
    assert (tracked["kind"], tracked["status"], tracked["handler"]) == (
        "rectification",
        "done",
        "carol",
    )
    # no birth date is kept for a decided request
    assert (
        await db.fetchval("select count(*) from consent_requests where birth_date is not null") == 0
    )
    assert await verify_chain(db)

    again = await _correct(svc, subject, birth_date=birth_date_years_ago(svc.clock, 16))
    assert again.status_code == 404


async def test_a_younger_child_moves_the_consents_end_later_with_the_same_consent(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    receiver: WebhookReceiver,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    subject = "child-birthday-younger"
    turning_soon = birth_date_turning(clock, SI_AGE, in_days=100)
    granted = await granted_consent(
        svc, api, mailbox, subject_id=subject, email=GUARDIAN, birth_date=turning_soon.isoformat()
    )
    before = await check(svc.client, api, subject)
    assert datetime.fromisoformat(before["expires_at"]) == local_midnight(
        turning_soon.replace(year=turning_soon.year + SI_AGE)
    )

    later = birth_date_turning(clock, SI_AGE, in_days=200)
    corrected = await _correct(svc, subject, birth_date=later.isoformat())
    assert corrected.status_code == 200, corrected.text
    body = corrected.json()
    new_end = local_midnight(later.replace(year=later.year + SI_AGE))
    assert body["consent_required"] is True
    assert body["consent_status"] == "granted"
    assert datetime.fromisoformat(body["expires_at"]) == new_end

    after = await check(svc.client, api, subject)
    assert (after["status"], after["consent_id"]) == ("granted", granted.consent_id)
    assert datetime.fromisoformat(after["expires_at"]) == new_end
    assert after["token"] != before["token"]
    assert await db.fetchval("select count(*) from consents") == 1
    assert await db.fetchval("select birth_date from consent_requests") is None

    await svc.worker.deliver_due()
    [delivery] = receiver.of_type("consent.updated")
    data = verified_payload(delivery)["data"]
    assert data["reason"] == "birth_date_corrected"
    assert datetime.fromisoformat(data["expires_at"]) == new_end

    # The old end passes: the consent is still live.
    clock.advance(timedelta(days=101))
    assert (await check(svc.client, api, subject))["status"] == "granted"


async def test_a_pending_request_no_longer_needed_is_closed_and_its_address_deleted(
    svc: Service,
    api: dict[str, str],
    receiver: WebhookReceiver,
    db: asyncpg.Connection,
) -> None:
    subject = "child-birthday-pending"
    await create_request(
        svc.client,
        api,
        subject_id=subject,
        email=GUARDIAN,
        birth_date=birth_date_years_ago(svc.clock, 10),
    )
    corrected = await _correct(svc, subject, birth_date=birth_date_years_ago(svc.clock, 17))
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["request_status"] == "expired"
    row = await db.fetchrow(
        "select status, guardian_email_enc, guardian_email_hash, birth_date from consent_requests"
    )
    assert row["status"] == "expired"
    assert (row["guardian_email_enc"], row["guardian_email_hash"], row["birth_date"]) == (
        None,
        None,
        None,
    )
    # the request email that had not gone out yet is not sent
    assert await svc.worker.deliver_due() >= 1
    assert (
        await db.fetchval("select count(*) from outbox where kind = 'email' and status = 'sent'")
        == 0
    )
    [delivery] = receiver.of_type("consent.expired")
    assert verified_payload(delivery)["data"]["reason"] == "not_required"
    assert (await check(svc.client, api, subject))["status"] == "expired"


async def test_a_pending_request_keeps_the_corrected_birth_date_and_a_new_age_of_consent(
    svc: Service, api: dict[str, str], db: asyncpg.Connection
) -> None:
    subject = "child-birthday-country"
    await create_request(
        svc.client,
        api,
        subject_id=subject,
        email=GUARDIAN,
        birth_date=birth_date_years_ago(svc.clock, 10),
    )
    new_date = birth_date_years_ago(svc.clock, 12)
    corrected = await _correct(svc, subject, birth_date=new_date, country="de")
    assert corrected.status_code == 200, corrected.text
    assert (corrected.json()["age_of_consent"], corrected.json()["jurisdiction"]) == (16, "DE")
    row = await db.fetchrow("select country, age_of_consent, birth_date from consent_requests")
    assert (row["country"], row["age_of_consent"], row["birth_date"].isoformat()) == (
        "DE",
        16,
        new_date,
    )


async def test_invalid_corrections_are_refused_and_change_nothing(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    subject = "child-birthday-invalid"
    await granted_consent(svc, api, mailbox, subject_id=subject, email=GUARDIAN)
    before = await db.fetchval("select count(*) from audit_events")
    for body, status in (
        ({"birth_date": "2015-02-30"}, 422),
        ({"birth_date": "3015-01-01"}, 422),
        ({"birth_date": birth_date_years_ago(svc.clock, 10), "country": "XX"}, 422),
        # France: the child consents jointly, which this consent never recorded
        ({"birth_date": birth_date_years_ago(svc.clock, 10), "country": "FR"}, 409),
    ):
        answer = await _correct(svc, subject, **body)
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert await db.fetchval("select count(*) from audit_events") == before
    assert await db.fetchval("select count(*) from data_requests") == 0
    assert (await _correct(svc, "nobody", birth_date="2015-01-01")).status_code == 404
    unauthorised = await svc.client.post(
        f"/v1/subjects/{subject}/birth-date",
        json={"birth_date": "2015-01-01"},
        headers=svc.staff("admin"),
    )
    assert unauthorised.status_code == 403
