"""Lapses the worker has not swept yet: a pending request past its expiry and a consent past its
lapse read expired at once (no token, no revocation), and a re-grant over a lapsed, unswept
consent expires it as a lapse, not as a replacement.

Real PostgreSQL, a real SMTP server and a real webhook receiver; time moves only through the
ManualClock.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg

from service.clock import ManualClock
from service.db.consents import LAPSE_REASON
from service.security.personal_data import normalize_email
from tests.support.dates import DAY, birth_date_turning, birth_date_years_ago, local_midnight
from tests.support.flows import check, create_request, grant_via_link, granted_consent, open_request
from tests.support.problems import assert_problem
from tests.support.service import Service, start_service
from tests.support.webhooks import WEBHOOK_SECRET, webhook_receiver

SUBJECT = "child-race-1"
GUARDIAN = "race.parent@example.com"
OTHER_GUARDIAN = "second.parent@example.com"


# ---- reported before the sweep ---------------------------------------------------------------


async def test_a_pending_request_past_its_expiry_reads_expired_before_the_sweep(
    svc: Service, api: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    request_id = await create_request(
        svc.client,
        api,
        subject_id="child-overdue",
        email="overdue@example.com",
        birth_date=birth_date_years_ago(clock),
    )
    expires_at = await db.fetchval(
        "select expires_at from consent_requests where id = $1", request_id
    )

    clock.set(expires_at - timedelta(seconds=1))
    before = await svc.client.get(f"/v1/consent-requests/{request_id}", headers=api)
    assert before.json()["status"] == "pending"

    clock.set(expires_at)
    overdue = await svc.client.get(f"/v1/consent-requests/{request_id}", headers=api)
    assert overdue.status_code == 200, overdue.text
    assert overdue.json()["status"] == "expired"
    assert (
        await db.fetchval("select status from consent_requests where id = $1", request_id)
        == "pending"
    )

    assert (await svc.worker.sweep())["expired_requests"] == 1
    swept = await svc.client.get(f"/v1/consent-requests/{request_id}", headers=api)
    assert swept.json()["status"] == "expired"


async def test_a_lapsed_unswept_consent_reads_expired_without_a_token_and_cannot_be_revoked(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    birth = birth_date_turning(clock, 15, in_days=10)
    granted = await granted_consent(
        svc,
        api,
        mailbox,
        subject_id="child-lapse-unswept",
        email="lapse.unswept@example.com",
        birth_date=birth.isoformat(),
    )
    lapse = local_midnight(birth.replace(year=birth.year + 15))
    live = await svc.client.get(f"/v1/consents/{granted.consent_id}", headers=api)
    assert live.json()["status"] == "granted"
    assert live.json()["token"]

    clock.set(lapse)
    for headers in (api, svc.staff("support")):
        record = await svc.client.get(f"/v1/consents/{granted.consent_id}", headers=headers)
        assert record.status_code == 200, record.text
        assert record.json()["status"] == "expired"
        assert record.json()["token"] is None
    consent_id = uuid.UUID(granted.consent_id)
    assert await db.fetchval("select status from consents where id = $1", consent_id) == "granted"

    revoked = await svc.client.post(
        f"/v1/consents/{granted.consent_id}/revoke",
        json={"reason": "Too late for this, the consent has lapsed"},
        headers=svc.staff("support"),
    )
    body = assert_problem(revoked, 409)
    assert body["current_status"] == "expired"
    assert await db.fetchval("select status from consents where id = $1", consent_id) == "granted"
    assert (
        await db.fetchval("select count(*) from audit_events where action = 'consent.revoked'") == 0
    )

    assert (await svc.worker.sweep())["lapsed_consents"] == 1
    after = await svc.client.post(
        f"/v1/consents/{granted.consent_id}/revoke",
        json={"reason": "Too late for this, the consent has lapsed"},
        headers=svc.staff("support"),
    )
    assert assert_problem(after, 409)["current_status"] == "expired"


# ---- a re-grant over a lapsed consent the worker has not swept yet ---------------------------


async def test_a_regrant_over_a_lapsed_unswept_consent_expires_it_without_a_replaced_email(
    base_env: dict[str, str],
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    birth = birth_date_years_ago(clock)
    async with (
        webhook_receiver() as receiver,
        start_service(
            base_env,
            clock,
            {
                "CONSENT_MAX_VALIDITY": "86400",
                "CONSENT_WEBHOOK_URL": receiver.url,
                "CONSENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            },
        ) as svc,
    ):
        first = await granted_consent(
            svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN, birth_date=birth
        )
        old_id = uuid.UUID(first.consent_id)
        old = await db.fetchrow("select granted_at, expires_at from consents where id = $1", old_id)
        assert old is not None
        assert old["expires_at"] == old["granted_at"] + DAY
        await svc.worker.deliver_due()  # the confirmation (no delay) and the webhooks

        clock.advance(2 * DAY)  # lapsed; the worker has not swept
        assert await db.fetchval("select status from consents where id = $1", old_id) == "granted"
        mailbox.clear()
        _, link = await open_request(
            svc, api, mailbox, subject_id=SUBJECT, email=OTHER_GUARDIAN, birth_date=birth
        )
        await grant_via_link(svc.client, link)  # 200 and a withdrawal link

        ended = await db.fetchrow(
            "select status, ended_at, end_reason from consents where id = $1", old_id
        )
        assert ended is not None
        assert ended["status"] == "expired"
        assert ended["ended_at"] == old["expires_at"]
        assert ended["end_reason"] == LAPSE_REASON
        live = await db.fetch(
            "select id from consents where subject_id = $1 and status = 'granted'", SUBJECT
        )
        assert len(live) == 1
        answer = await check(svc.client, api, SUBJECT)
        assert answer["status"] == "granted"
        assert answer["consent_id"] == str(live[0]["id"])

        [event] = await db.fetch(
            "select * from audit_events where action = 'consent.expired' and consent_id = $1",
            old_id,
        )
        assert event["actor"] == "system"
        assert (event["from_status"], event["to_status"]) == ("granted", "expired")
        assert event["occurred_at"] == clock.now()
        assert (
            await db.fetchval(
                "select count(*) from audit_events where action = 'consent.superseded'"
            )
            == 0
        )
        assert (
            await db.fetchval("select count(*) from outbox where topic = 'consent_replaced'") == 0
        )

        await svc.worker.deliver_due()
        assert mailbox.to(GUARDIAN) == []
        replaced = [m for m in mailbox.messages if "replaced" in m.subject]
        assert replaced == []
        assert len(mailbox.to(normalize_email(OTHER_GUARDIAN))) == 2  # request, confirmation
        lapsed = [
            d.json()["data"]
            for d in receiver.of_type("consent.expired")
            if d.json()["data"]["consent_id"] == str(old_id)
        ]
        assert len(lapsed) == 1
        assert lapsed[0]["status"] == "expired"

        # The sweep has nothing left to lapse and records no second event.
        assert (await svc.worker.sweep())["lapsed_consents"] == 0
        assert (
            await db.fetchval("select count(*) from audit_events where action = 'consent.expired'")
            == 1
        )
        stale = await svc.client.get(first.withdraw_path)
        assert stale.status_code == 410, stale.text
