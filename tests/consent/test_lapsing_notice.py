"""Coming of age: ``CONSENT_LAPSING_NOTICE_DAYS`` before a consent lapses because the child
reaches the age of consent, the worker's sweep emails the guardian (in the request's language)
and sends the app ``consent.lapsing``, exactly once per consent; at the lapse the app gets
``consent.expired`` once. Real PostgreSQL, SMTP and webhook receiver; time moves only through
the ManualClock.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from service.clock import ManualClock
from tests.support.credentials import make_api_key
from tests.support.dates import DAY, LJUBLJANA, SECOND, birth_date_turning, local_midnight
from tests.support.flows import (
    Granted,
    create_request,
    grant_via_link,
    granted_consent,
    withdraw_via_form,
)
from tests.support.guardian_client import guardian_link
from tests.support.service import Service, start_service, worker_for
from tests.support.webhooks import WebhookReceiver, webhook_env

GUARDIAN = "lapsing.parent@example.com"
LEAD = 30 * DAY
SUBJECT_EN = "Učilnica Tutoring: your child will soon decide alone"
SUBJECT_SL = "Učilnica Tutoring: vaš otrok bo kmalu odločal sam"


@pytest.fixture
def svc_env(receiver: WebhookReceiver) -> dict[str, str]:
    return webhook_env(receiver)


async def consent_turning_15(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    *,
    subject_id: str,
    in_days: int,
    email: str = GUARDIAN,
) -> tuple[Granted, datetime]:
    """A granted consent for a Slovenian child who turns 15 in ``in_days`` days, and the
    instant it lapses (Ljubljana midnight of that birthday)."""
    birth = birth_date_turning(svc.clock, 15, in_days=in_days)
    granted = await granted_consent(
        svc, api, mailbox, subject_id=subject_id, email=email, birth_date=birth.isoformat()
    )
    await svc.worker.deliver_due()  # the confirmation and consent.granted
    birthday = birth.replace(year=birth.year + 15)
    return granted, local_midnight(birthday)


def lapsing_emails(mailbox: Any) -> list[Any]:
    return [m for m in mailbox.to(GUARDIAN) if m.subject in (SUBJECT_EN, SUBJECT_SL)]


async def notified_at(db: asyncpg.Connection, consent_id: str) -> datetime | None:
    value: datetime | None = await db.fetchval(
        "select lapsing_notified_at from consents where id = $1", uuid.UUID(consent_id)
    )
    return value


async def test_the_notice_goes_out_once_at_the_lead_time_and_the_lapse_once_after(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    receiver: WebhookReceiver,
    db: asyncpg.Connection,
) -> None:
    granted, lapses_at = await consent_turning_15(
        svc, api, mailbox, subject_id="child-lapsing-1", in_days=100
    )
    stored = await db.fetchval(
        "select expires_at from consents where id = $1", uuid.UUID(granted.consent_id)
    )
    assert stored == lapses_at

    clock.set(lapses_at - LEAD - SECOND)
    assert (await svc.worker.sweep())["lapsing_notices"] == 0
    await svc.worker.deliver_due()
    assert lapsing_emails(mailbox) == []
    assert receiver.of_type("consent.lapsing") == []
    assert await notified_at(db, granted.consent_id) is None

    clock.set(lapses_at - LEAD)
    assert (await svc.worker.sweep())["lapsing_notices"] == 1
    await svc.worker.deliver_due()
    [email] = lapsing_emails(mailbox)
    assert email.subject == SUBJECT_EN
    birthday = lapses_at.astimezone(LJUBLJANA).date()
    assert f"On {birthday.day} {birthday:%B} {birthday.year} your child turns 15" in email.text
    assert "decides alone" in email.text
    assert "will ask them, not you" in email.text
    assert "http://consent.test/privacy/retention" in email.text
    assert "Tutoring" in email.text
    assert "Newsletter" in email.text
    [hook] = receiver.of_type("consent.lapsing")
    data = hook.json()["data"]
    assert data["subject_id"] == "child-lapsing-1"
    assert data["consent_id"] == granted.consent_id
    assert datetime.fromisoformat(data["lapses_at"]) == lapses_at
    assert data["purposes"] == ["tutoring", "progress_reports", "newsletter"]
    assert GUARDIAN not in hook.body.decode()
    assert await notified_at(db, granted.consent_id) == clock.now()

    # Later sweeps, before the lapse: nothing again.
    for _ in range(3):
        clock.advance(7 * DAY)
        assert (await svc.worker.sweep())["lapsing_notices"] == 0
    await svc.worker.deliver_due()
    assert len(lapsing_emails(mailbox)) == 1
    assert len(receiver.of_type("consent.lapsing")) == 1

    # The lapse itself: consent.expired, once.
    clock.set(lapses_at)
    swept = await svc.worker.sweep()
    assert swept["lapsed_consents"] == 1
    assert swept["lapsing_notices"] == 0
    clock.advance(DAY)
    assert (await svc.worker.sweep())["lapsed_consents"] == 0
    await svc.worker.deliver_due()
    [expired] = receiver.of_type("consent.expired")
    assert expired.json()["data"]["consent_id"] == granted.consent_id
    assert len(receiver.of_type("consent.lapsing")) == 1
    events = await db.fetch(
        "select action from audit_events where consent_id = $1 order by id",
        uuid.UUID(granted.consent_id),
    )
    actions = [event["action"] for event in events]
    assert actions.count("consent.lapsing_notified") == 1
    assert actions.index("consent.lapsing_notified") < actions.index("consent.expired")


async def test_the_notice_is_in_the_language_of_the_request(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
) -> None:
    birth = birth_date_turning(clock, 15, in_days=60)
    await create_request(
        svc.client,
        api,
        subject_id="child-lapsing-sl",
        email=GUARDIAN,
        birth_date=birth.isoformat(),
        locale="sl",
    )
    await svc.worker.deliver_due()
    await grant_via_link(svc.client, guardian_link(mailbox.to(GUARDIAN)[-1].text))
    lapses_at = local_midnight(birth.replace(year=birth.year + 15))

    clock.set(lapses_at - LEAD)
    assert (await svc.worker.sweep())["lapsing_notices"] == 1
    await svc.worker.deliver_due()
    [email] = [m for m in mailbox.to(GUARDIAN) if m.subject == SUBJECT_SL]
    assert "vaš otrok dopolni 15 let" in email.text
    assert "Od takrat naprej otrok odloča sam" in email.text
    assert "vprašala njega, ne vas" in email.text
    assert "Inštrukcije" in email.text
    assert "your child" not in email.text.lower()
    assert "Vaše soglasje velja do" in email.html


async def test_a_withdrawn_or_revoked_consent_gets_no_notice(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    receiver: WebhookReceiver,
    db: asyncpg.Connection,
) -> None:
    withdrawn, lapses_at = await consent_turning_15(
        svc, api, mailbox, subject_id="child-lapsing-withdrawn", in_days=50
    )
    answer = await withdraw_via_form(svc.client, withdrawn.withdraw_path)
    assert answer.status_code == 200, answer.text
    revoked, _ = await consent_turning_15(
        svc, api, mailbox, subject_id="child-lapsing-revoked", in_days=50
    )
    response = await svc.client.post(
        f"/v1/consents/{revoked.consent_id}/revoke",
        json={"reason": "asked by phone"},
        headers=svc.staff("support"),
    )
    assert response.status_code == 200, response.text

    clock.set(lapses_at - LEAD + DAY)
    assert (await svc.worker.sweep())["lapsing_notices"] == 0
    clock.set(lapses_at + DAY)
    assert (await svc.worker.sweep())["lapsed_consents"] == 0
    await svc.worker.deliver_due()
    assert lapsing_emails(mailbox) == []
    assert receiver.of_type("consent.lapsing") == []
    assert receiver.of_type("consent.expired") == []
    assert (
        await db.fetchval("select count(*) from consents where lapsing_notified_at is not null")
        == 0
    )


async def test_a_lapse_by_the_maximum_validity_is_no_coming_of_age(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    receiver: WebhookReceiver,
) -> None:
    # A ten-year-old: the consent lapses after CONSENT_MAX_VALIDITY (365 days), not at 15.
    granted = await granted_consent(
        svc, api, mailbox, subject_id="child-lapsing-young", email=GUARDIAN
    )
    clock.advance(365 * DAY - LEAD)
    assert (await svc.worker.sweep())["lapsing_notices"] == 0
    await svc.worker.deliver_due()
    assert lapsing_emails(mailbox) == []
    assert receiver.of_type("consent.lapsing") == []
    clock.advance(LEAD)
    assert (await svc.worker.sweep())["lapsed_consents"] == 1
    await svc.worker.deliver_due()
    [expired] = receiver.of_type("consent.expired")
    assert expired.json()["data"]["consent_id"] == granted.consent_id


async def test_a_consent_granted_within_the_lead_time_is_told_on_the_next_sweep(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    receiver: WebhookReceiver,
) -> None:
    granted, _ = await consent_turning_15(
        svc, api, mailbox, subject_id="child-lapsing-soon", in_days=10
    )
    assert (await svc.worker.sweep())["lapsing_notices"] == 1
    assert (await svc.worker.sweep())["lapsing_notices"] == 0
    await svc.worker.deliver_due()
    assert len(lapsing_emails(mailbox)) == 1
    [hook] = receiver.of_type("consent.lapsing")
    assert hook.json()["data"]["consent_id"] == granted.consent_id


async def test_less_than_a_day_left_gets_no_notice(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    receiver: WebhookReceiver,
    db: asyncpg.Connection,
) -> None:
    granted, lapses_at = await consent_turning_15(
        svc, api, mailbox, subject_id="child-lapsing-tomorrow", in_days=3
    )
    clock.set(lapses_at - DAY + SECOND)
    assert (await svc.worker.sweep())["lapsing_notices"] == 0
    await svc.worker.deliver_due()
    assert lapsing_emails(mailbox) == []
    assert receiver.of_type("consent.lapsing") == []
    # looked at once, and not again
    assert await notified_at(db, granted.consent_id) == clock.now()


async def test_two_workers_sweeping_at_once_send_one_notice(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    lapses = []
    for index in range(6):
        _, lapses_at = await consent_turning_15(
            svc,
            api,
            mailbox,
            subject_id=f"child-lapsing-race-{index}",
            in_days=40,
            email=f"lapsing.race.{index}@example.com",
        )
        lapses.append(lapses_at)
    clock.set(max(lapses) - LEAD)
    async with worker_for(svc.settings, clock) as other:
        counts = await asyncio.gather(
            svc.worker.sweep(), other.sweep(), svc.worker.sweep(), other.sweep()
        )
    assert sum(count["lapsing_notices"] for count in counts) == 6
    assert await db.fetchval("select count(*) from outbox where topic = 'consent_lapsing'") == 6
    assert await db.fetchval("select count(*) from outbox where topic = 'consent.lapsing'") == 6
    assert (
        await db.fetchval(
            "select count(*) from audit_events where action = 'consent.lapsing_notified'"
        )
        == 6
    )


async def test_the_lead_time_is_the_setting(
    base_env: dict[str, str], clock: ManualClock, mailbox: Any, db: asyncpg.Connection
) -> None:
    async with start_service(base_env, clock, {"CONSENT_LAPSING_NOTICE_DAYS": "10"}) as svc:
        api = {"Authorization": f"Bearer {await make_api_key(db)}"}
        _, lapses_at = await consent_turning_15(
            svc, api, mailbox, subject_id="child-lapsing-ten", in_days=40
        )
        clock.set(lapses_at - 10 * DAY - SECOND)
        assert (await svc.worker.sweep())["lapsing_notices"] == 0
        clock.set(lapses_at - 10 * DAY)
        assert (await svc.worker.sweep())["lapsing_notices"] == 1
        await svc.worker.deliver_due()
        assert len(lapsing_emails(mailbox)) == 1


async def test_zero_days_sends_no_notice(
    base_env: dict[str, str], clock: ManualClock, mailbox: Any, db: asyncpg.Connection
) -> None:
    async with start_service(base_env, clock, {"CONSENT_LAPSING_NOTICE_DAYS": "0"}) as svc:
        api = {"Authorization": f"Bearer {await make_api_key(db)}"}
        _, lapses_at = await consent_turning_15(
            svc, api, mailbox, subject_id="child-lapsing-off", in_days=5
        )
        clock.set(lapses_at - SECOND)
        assert (await svc.worker.sweep())["lapsing_notices"] == 0
        await svc.worker.deliver_due()
        assert lapsing_emails(mailbox) == []
