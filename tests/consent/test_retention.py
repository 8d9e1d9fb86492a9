"""Retention with the default periods (denied 30 d, expired 30 d, withdrawn or revoked 90 d):
personal data of finished records is kept exactly that long, then purged by the worker's sweep
with an anonymous audit event. Time moves only through the ManualClock."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from service.clock import ManualClock
from service.db.audit_events import verify_chain
from tests.support.dates import DAY, SECOND
from tests.support.flows import check, granted_consent, open_request, withdraw_via_form
from tests.support.guardian_client import open_and_submit
from tests.support.service import Service

GUARDIAN = "retention.parent@example.com"
SUBJECT = "child-retention-1"


@pytest.fixture
def svc_env() -> dict[str, str]:
    # What a withdrawal keeps until retention ends; with erasure on withdrawal (the default)
    # it keeps less at once: tests/consent/test_erasure_on_withdrawal.py.
    return {"CONSENT_WITHDRAWAL_ERASES": "false"}


@pytest.fixture
def svc(svc: Service) -> Service:
    """The staff-enabled service of conftest, with the default retention periods."""
    assert svc.settings.retention_denied == 30 * 86_400
    assert svc.settings.retention_expired == 30 * 86_400
    assert svc.settings.retention_withdrawn == 90 * 86_400
    return svc


async def request_row(db: asyncpg.Connection, request_id: str) -> asyncpg.Record:
    row = await db.fetchrow("select * from consent_requests where id = $1", uuid.UUID(request_id))
    assert row is not None
    return row


async def purge_events(db: asyncpg.Connection, action: str) -> list[asyncpg.Record]:
    return list(await db.fetch("select * from audit_events where action = $1", action))


def assert_anonymous(event: asyncpg.Record) -> None:
    assert event["subject_id"] is None
    assert event["reason"] is None
    assert event["details"] == "{}"
    assert event["actor"] == "system"


async def test_denied_request_keeps_the_guardian_address_for_30_days_then_purges_it(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    request_id, link = await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    clock.advance(timedelta(hours=3))
    denied = await open_and_submit(svc.client, link, {"decision": "deny"})
    assert denied.status_code == 200, denied.text
    decided_at: datetime = (await request_row(db, request_id))["decided_at"]
    assert decided_at == clock.now()

    clock.set(decided_at + 30 * DAY - SECOND)
    swept = await svc.worker.sweep()
    assert swept["purged_requests"] == 0
    kept = await request_row(db, request_id)
    assert kept["guardian_email_enc"] is not None
    assert kept["guardian_email_hash"] is not None
    assert kept["purged_at"] is None
    assert await purge_events(db, "request.purged") == []

    clock.set(decided_at + 30 * DAY + SECOND)
    swept = await svc.worker.sweep()
    assert swept["purged_requests"] == 1
    purged = await request_row(db, request_id)
    assert purged["guardian_email_enc"] is None
    assert purged["guardian_email_hash"] is None
    assert purged["link_token_hash"] is None
    assert purged["birth_date"] is None
    assert purged["purged_at"] == clock.now()
    assert purged["status"] == "denied"  # the outcome is kept; the person is not
    [event] = await purge_events(db, "request.purged")
    assert_anonymous(event)
    assert str(event["request_id"]) == request_id
    assert (event["from_status"], event["to_status"]) == ("denied", "denied")

    # The check still answers, and a second sweep purges nothing again.
    assert (await check(svc.client, api, SUBJECT))["status"] == "denied"
    assert (await svc.worker.sweep())["purged_requests"] == 0
    assert len(await purge_events(db, "request.purged")) == 1
    # The staff overview shows the record without a guardian address.
    overview = await svc.client.get(f"/v1/subjects/{SUBJECT}", headers=svc.staff("support"))
    [shown] = overview.json()["requests"]
    assert shown["guardian_email"] is None
    assert shown["purged_at"] is not None
    _, broken = await verify_chain(db)
    assert broken is None


async def test_expired_request_is_purged_30_days_after_it_expired(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    request_id, _ = await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    expires_at: datetime = (await request_row(db, request_id))["expires_at"]
    clock.set(expires_at + SECOND)
    assert (await svc.worker.sweep())["expired_requests"] == 1
    expired = await request_row(db, request_id)
    assert expired["status"] == "expired"
    assert expired["guardian_email_enc"] is None  # the email promised deletion at expiry
    assert expired["purged_at"] is None

    clock.set(expired["decided_at"] + 30 * DAY - SECOND)
    assert (await svc.worker.sweep())["purged_requests"] == 0
    assert (await request_row(db, request_id))["link_token_hash"] is not None

    clock.set(expired["decided_at"] + 30 * DAY + SECOND)
    assert (await svc.worker.sweep())["purged_requests"] == 1
    purged = await request_row(db, request_id)
    assert purged["link_token_hash"] is None
    assert purged["purged_at"] == clock.now()
    [event] = await purge_events(db, "request.purged")
    assert_anonymous(event)
    assert (await check(svc.client, api, SUBJECT))["status"] == "expired"


@pytest.mark.parametrize("ending", ["withdrawn", "revoked"])
async def test_ended_consent_loses_its_token_after_90_days(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    ending: str,
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    await svc.worker.deliver_due()
    clock.advance(DAY)
    if ending == "withdrawn":
        response = await withdraw_via_form(svc.client, granted.withdraw_path)
    else:
        response = await svc.client.post(
            f"/v1/consents/{granted.consent_id}/revoke",
            json={"reason": "account closed by the school"},
            headers=svc.staff("support"),
        )
    assert response.status_code == 200, response.text
    consent_id = uuid.UUID(granted.consent_id)
    ended_at: datetime = await db.fetchval(
        "select ended_at from consents where id = $1", consent_id
    )
    assert ended_at == clock.now()

    # 30 days is the period for denied and expired requests, not for ended consents.
    clock.set(ended_at + 89 * DAY)
    assert (await svc.worker.sweep())["purged_consents"] == 0
    clock.set(ended_at + 90 * DAY - SECOND)
    swept = await svc.worker.sweep()
    assert swept["purged_consents"] == 0
    assert swept["purged_requests"] == 0
    kept = await db.fetchrow("select * from consents where id = $1", consent_id)
    assert kept["token"] is not None
    assert kept["withdraw_token_hash"] is not None
    assert kept["purged_at"] is None
    assert (await request_row(db, granted.request_id))["guardian_email_enc"] is not None

    clock.set(ended_at + 90 * DAY + SECOND)
    assert (await svc.worker.sweep())["purged_consents"] == 1
    purged = await db.fetchrow("select * from consents where id = $1", consent_id)
    assert purged["status"] == ending
    assert purged["token"] is None
    assert purged["withdraw_token_hash"] is None
    assert purged["purged_at"] == clock.now()
    request = await request_row(db, granted.request_id)
    assert request["guardian_email_enc"] is None
    assert request["guardian_email_hash"] is None
    [event] = await purge_events(db, "consent.purged")
    assert_anonymous(event)
    assert event["consent_id"] == consent_id
    assert (event["from_status"], event["to_status"]) == (ending, ending)

    assert (await check(svc.client, api, SUBJECT))["status"] == ending
    record = await svc.client.get(f"/v1/consents/{granted.consent_id}", headers=api)
    assert record.status_code == 200
    assert record.json()["token"] is None
    assert (await svc.worker.sweep())["purged_consents"] == 0
    _, broken = await verify_chain(db)
    assert broken is None


async def test_granted_consent_is_not_purged(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    clock.advance(200 * DAY)
    swept = await svc.worker.sweep()
    assert swept["purged_consents"] == 0
    assert swept["purged_requests"] == 0
    token = await db.fetchval(
        "select token from consents where id = $1", uuid.UUID(granted.consent_id)
    )
    assert token is not None
    assert (await check(svc.client, api, SUBJECT))["status"] == "granted"
