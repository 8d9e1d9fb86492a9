"""Reminders to an undecided guardian: the worker's sweep sends one, CONSENT_REMINDER_BEFORE_EXPIRY
before the link expires (48 hours by default), exactly once, never after a decision, a
cancellation or the expiry; support staff resend through the same path and limits
(``POST /v1/consent-requests/{id}/remind``). Real PostgreSQL and SMTP; time moves only through
the ManualClock.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from service.clock import ManualClock
from service.consent.reminders import GUARDIAN_REMINDERS_PER_DAY
from service.i18n import translator
from tests.support.dates import SECOND, birth_date_years_ago
from tests.support.flows import GRANT_ALL, create_request
from tests.support.guardian_client import guardian_link, open_and_submit, path_of
from tests.support.problems import assert_problem
from tests.support.service import Service, browser, start_service

GUARDIAN = "reminded.parent@example.com"
HOUR = timedelta(hours=1)
# the defaults: links last 7 days; the reminder goes 48 hours before they expire
REMINDER_DUE = timedelta(days=5)
REMINDER_SUBJECT = (
    "Reminder from Učilnica Tutoring: your consent is needed for your child's account"
)


async def open_pending(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    *,
    subject_id: str,
    email: str = GUARDIAN,
    **overrides: Any,
) -> tuple[uuid.UUID, str]:
    """A pending request whose first email was delivered; its id and the emailed link."""
    request_id = await create_request(
        svc.client,
        api,
        subject_id=subject_id,
        email=email,
        birth_date=birth_date_years_ago(svc.clock),
        **overrides,
    )
    mailbox.clear()
    assert await svc.worker.deliver_due() == 1
    [message] = mailbox.to(email)
    return request_id, guardian_link(message.text)


async def sweep_reminders(svc: Service) -> int:
    reminded: int = (await svc.worker.sweep())["reminders"]
    return reminded


async def test_the_reminder_goes_out_once_at_the_configured_time_and_its_link_works(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    start = svc.clock.now()
    request_id, first_link = await open_pending(
        svc, api, mailbox, subject_id="child-reminded", child_hint="mala_mia"
    )

    svc.clock.set(start + REMINDER_DUE - SECOND)
    assert await sweep_reminders(svc) == 0
    assert await svc.worker.deliver_due() == 0

    svc.clock.set(start + REMINDER_DUE + SECOND)
    mailbox.clear()
    assert await sweep_reminders(svc) == 1
    assert await svc.worker.deliver_due() == 1
    [reminder] = mailbox.to(GUARDIAN)
    assert reminder.subject == REMINDER_SUBJECT
    assert "This is a reminder." in reminder.text
    assert "This request concerns the account “mala_mia”." in reminder.text
    assert "(Central European Standard Time)" in reminder.text or (
        "(Central European Summer Time)" in reminder.text
    )
    reminder_link = guardian_link(reminder.text)
    assert reminder_link != first_link

    # once: later sweeps, by this worker or another, send nothing more
    for later in (SECOND, HOUR, 47 * HOUR):
        svc.clock.set(start + REMINDER_DUE + later)
        assert await sweep_reminders(svc) == 0
    assert await svc.worker.deliver_due() == 0
    events = await db.fetch(
        "select actor, action from audit_events where request_id = $1 and action = $2",
        request_id,
        "request.reminded",
    )
    assert [(e["actor"], e["action"]) for e in events] == [("system", "request.reminded")]

    # both links open the same request; a decision through the reminder's uses up both
    client = browser(svc.app)
    async with client:
        assert (await client.get(path_of(first_link))).status_code == 200
        decided = await open_and_submit(client, reminder_link, GRANT_ALL)
        assert decided.status_code == 200, decided.text
        used = await client.get(path_of(first_link))
        assert used.status_code == 410, used.status_code
        assert "This link has already been used" in used.text


async def test_no_reminder_after_a_decision_a_supersession_or_the_expiry(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    start = svc.clock.now()
    _, decided_link = await open_pending(svc, api, mailbox, subject_id="child-decided")
    client = browser(svc.app)
    async with client:
        answered = await open_and_submit(client, decided_link, {"decision": "deny"})
        assert answered.status_code == 200, answered.text
    superseded, _ = await open_pending(svc, api, mailbox, subject_id="child-twice")
    newer, _ = await open_pending(svc, api, mailbox, subject_id="child-twice")

    svc.clock.set(start + REMINDER_DUE + SECOND)
    mailbox.clear()
    # only the newer request of child-twice is still waiting for its guardian
    assert await sweep_reminders(svc) == 1
    assert await svc.worker.deliver_due() == 1
    [reminder] = mailbox.to(GUARDIAN)
    assert reminder.subject == REMINDER_SUBJECT
    assert superseded != newer

    # past the expiry, nothing is reminded: the expiry closes the request
    _, _late = await open_pending(svc, api, mailbox, subject_id="child-expired")
    svc.clock.set(svc.clock.now() + timedelta(days=8))
    mailbox.clear()
    assert await sweep_reminders(svc) == 0
    assert await svc.worker.deliver_due() == 0


async def test_a_reminder_queued_before_a_decision_is_never_sent(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    request_id, link = await open_pending(svc, api, mailbox, subject_id="child-quick")
    resent = await svc.client.post(
        f"/v1/consent-requests/{request_id}/remind", headers=svc.staff("support")
    )
    assert resent.status_code == 200, resent.text
    client = browser(svc.app)
    async with client:
        decided = await open_and_submit(client, link, GRANT_ALL)
        assert decided.status_code == 200, decided.text
    mailbox.clear()
    await svc.worker.deliver_due()
    subjects = [message.subject for message in mailbox.to(GUARDIAN)]
    assert REMINDER_SUBJECT not in subjects
    assert subjects == ["Učilnica Tutoring: confirmation of your consent"]


@pytest.mark.parametrize(("setting", "due"), [("86400", timedelta(days=6)), ("off", None)])
async def test_the_lead_is_configurable_and_off_sends_none(
    base_env: dict[str, str],
    clock: ManualClock,
    api: dict[str, str],
    mailbox: Any,
    setting: str,
    due: timedelta | None,
) -> None:
    env = {"CONSENT_REMINDER_BEFORE_EXPIRY": setting}
    async with start_service(base_env, clock, env) as svc:
        start = svc.clock.now()
        await open_pending(svc, api, mailbox, subject_id=f"child-configured-{setting}")
        svc.clock.set(start + REMINDER_DUE + SECOND)  # 48 hours before: too early for 24
        assert await sweep_reminders(svc) == 0
        svc.clock.set(start + timedelta(days=6) + SECOND)
        assert await sweep_reminders(svc) == (1 if due else 0)


async def test_staff_resend_uses_the_same_path_and_limits(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    support = svc.staff("support")
    request_id, _ = await open_pending(
        svc, api, mailbox, subject_id="child-resent", locale="sl", child_hint="Miha <b>"
    )
    path = f"/v1/consent-requests/{request_id}/remind"

    assert_problem(await svc.client.post(path, headers=api), 401)
    assert_problem(await svc.client.post(path, headers=svc.staff("admin")), 403)
    assert_problem(
        await svc.client.post(f"/v1/consent-requests/{uuid.uuid4()}/remind", headers=support), 404
    )

    mailbox.clear()
    resent = await svc.client.post(path, headers=support)
    assert resent.status_code == 200, resent.text
    assert resent.json()["request_id"] == str(request_id)
    assert await svc.worker.deliver_due() == 1
    [message] = mailbox.to(GUARDIAN)
    sl = translator("sl")
    assert message.subject == sl.gettext(
        "Reminder from %(operator)s: your consent is needed for your child's account",
        operator="Učilnica Tutoring",
    )
    assert "Zahteva se nanaša na račun »Miha <b>«." in message.text
    assert "Zahteva se nanaša na račun »Miha &lt;b&gt;«." in message.html
    assert "srednjeevropski" in message.text

    # at most one per request per hour
    again = assert_problem(await svc.client.post(path, headers=support), 429)
    assert "hour" in again["detail"]
    svc.clock.advance(HOUR + SECOND)
    assert (await svc.client.post(path, headers=support)).status_code == 200
    # the sweep does not add its own to a request staff already reminded
    svc.clock.set(svc.clock.now() + REMINDER_DUE)
    assert await sweep_reminders(svc) == 0

    actors = await db.fetch(
        "select actor from audit_events where request_id = $1 and action = 'request.reminded'",
        request_id,
    )
    assert [row["actor"] for row in actors] == ["staff:alice", "staff:alice"]


async def test_reminders_to_one_address_are_limited(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    support = svc.staff("support")
    email = "busy.parent@example.com"
    ids = [
        (await open_pending(svc, api, mailbox, subject_id=f"child-busy-{n}", email=email))[0]
        for n in range(GUARDIAN_REMINDERS_PER_DAY + 1)
    ]
    for request_id in ids[:-1]:
        answer = await svc.client.post(f"/v1/consent-requests/{request_id}/remind", headers=support)
        assert answer.status_code == 200, answer.text
    limited = await svc.client.post(f"/v1/consent-requests/{ids[-1]}/remind", headers=support)
    assert_problem(limited, 429)
    assert int(limited.headers["retry-after"]) > 0


async def test_a_decided_request_is_not_resent(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    request_id, link = await open_pending(svc, api, mailbox, subject_id="child-done")
    client = browser(svc.app)
    async with client:
        assert (await open_and_submit(client, link, {"decision": "deny"})).status_code == 200
    answer = await svc.client.post(
        f"/v1/consent-requests/{request_id}/remind", headers=svc.staff("support")
    )
    assert_problem(answer, 409)
