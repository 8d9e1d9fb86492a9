"""Actions on a case in the support console, over real HTTP with a session signed in through
the development identity provider: revoke (form, check of the guardian's email, revoke),
reminders and their limit, unlocking a review and a withdrawal link, cancelling a request.
Each route refuses a missing session and a missing CSRF token, answers unknown ids with a 404
page, and changes nothing when it refuses."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.clock import ManualClock
from service.consent.revocation_reasons import PRESET_REASONS
from service.i18n import translator
from service.settings import Settings
from service.worker import Worker
from tests.support.browser import live_server
from tests.support.console import console_test_marks, csrf_token, sign_in
from tests.support.credentials import make_api_key
from tests.support.flows import GRANT_ALL, WITHDRAW_HREF, create_request
from tests.support.guardian_client import guardian_link, open_and_submit, path_of
from tests.support.service import worker_for

pytestmark = console_test_marks()

GUARDIAN = "case.actions@example.com"
REASON = "Guardian phoned: ticket 5120"
NOTE = "Mother called from the school office; confirmed by callback."
UNKNOWN = "00000000-0000-4000-8000-0000000000aa"

# The action routes, with the id each takes; every one is the support role's (as on the staff API).
ACTION_ROUTES = [
    ("GET", "/console/consents/{consent_id}/revoke"),
    ("POST", "/console/consents/{consent_id}/revoke/edit"),
    ("POST", "/console/consents/{consent_id}/revoke/confirm"),
    ("POST", "/console/consents/{consent_id}/revoke"),
    ("POST", "/console/consents/{consent_id}/unlock-withdrawal"),
    ("POST", "/console/requests/{request_id}/remind"),
    ("POST", "/console/requests/{request_id}/unlock"),
    ("GET", "/console/requests/{request_id}/cancel"),
    ("POST", "/console/requests/{request_id}/cancel"),
]


@pytest.fixture
def console_clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture
async def console(
    settings_for_console: Settings, console_port: int, console_clock: ManualClock
) -> AsyncIterator[str]:
    app = create_app(settings_for_console, clock=console_clock)
    async with live_server(app, console_port) as base_url:
        yield base_url


@pytest.fixture
async def console_worker(
    settings_for_console: Settings, console_clock: ManualClock
) -> AsyncIterator[Worker]:
    async with worker_for(settings_for_console, console_clock, max_size=2) as worker:
        yield worker


@pytest.fixture
async def guardian(console: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as client:
        yield client


@pytest.fixture
async def staff(console: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


class Case:
    def __init__(self, subject: str, request_id: str, link: str) -> None:
        self.subject = subject
        self.request_id = request_id
        self.link = link


async def _pending(
    console: str, db: asyncpg.Connection, worker: Worker, mailbox: Any, subject: str, locale: str
) -> Case:
    key = await make_api_key(db, "consent:request", "consent:check")
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as api:
        request_id = await create_request(
            api,
            {"Authorization": f"Bearer {key}"},
            subject_id=subject,
            email=GUARDIAN,
            birth_date="2015-04-01",
            locale=locale,
        )
    assert await worker.deliver_due() >= 1
    link = guardian_link(mailbox.to(GUARDIAN)[-1].text)
    return Case(subject, str(request_id), link)


async def _granted(
    console: str,
    db: asyncpg.Connection,
    worker: Worker,
    mailbox: Any,
    guardian: httpx.AsyncClient,
    subject: str,
) -> tuple[str, str]:
    """A live consent (request language sl); (consent id, withdrawal path)."""
    case = await _pending(console, db, worker, mailbox, subject, "sl")
    result = await open_and_submit(guardian, case.link, GRANT_ALL)
    assert result.status_code == 200, result.text
    match = WITHDRAW_HREF.search(result.text)
    assert match
    consent_id = await db.fetchval("select id::text from consents where subject_id = $1", subject)
    await worker.deliver_due()
    mailbox.clear()
    return consent_id, match.group(1)


def _fill(path: str, value: str) -> str:
    return re.sub(r"\{\w+\}", value, path)


async def _post(
    client: httpx.AsyncClient, url: str, page_html: str, data: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(url, data={**(data or {}), "_csrf_token": csrf_token(page_html)})


async def test_without_a_session_every_action_sends_the_browser_to_sign_in(console: str) -> None:
    async with httpx.AsyncClient(timeout=10.0) as anonymous:
        await anonymous.get(f"{console}/console/auth/signed-out")
        token = anonymous.cookies.get("csrftoken")
        for method, path in ACTION_ROUTES:
            answer = await anonymous.request(
                method,
                f"{console}{_fill(path, UNKNOWN)}",
                headers={"x-csrftoken": token} if method == "POST" else {},
            )
            assert answer.status_code == 303, (method, path)
            assert answer.headers["location"].startswith("/console/auth/login"), (method, path)


@pytest.mark.parametrize("user", ["support", "admin"])
async def test_unknown_ids_are_a_404_page_for_support_and_admin(
    console: str, staff: httpx.AsyncClient, user: str
) -> None:
    home = await sign_in(staff, console, user)
    for method, path in ACTION_ROUTES:
        url = f"{console}{_fill(path, UNKNOWN)}"
        if method == "GET":
            answer = await staff.get(url)
        else:
            answer = await _post(staff, url, home.text, {"reason": REASON, "guardian": "none"})
        assert answer.status_code == 404, (user, method, path, answer.status_code)
        assert answer.headers["content-type"].startswith("text/html")
        assert "There is no such consent or request." in answer.text
        assert answer.headers["cache-control"] == "no-store"
    not_an_id = await staff.get(f"{console}/console/consents/not-a-uuid/revoke")
    assert not_an_id.status_code in (400, 404)


async def test_revoke_shows_the_guardians_email_before_and_keeps_the_note_in_the_trail(
    console: str,
    db: asyncpg.Connection,
    console_worker: Worker,
    mailbox: Any,
    guardian: httpx.AsyncClient,
    staff: httpx.AsyncClient,
) -> None:
    subject = "child-actions-revoke"
    consent_id, _ = await _granted(console, db, console_worker, mailbox, guardian, subject)
    await sign_in(staff, console, "support")
    case = await staff.get(f"{console}/console/subjects/{subject}")
    assert f'href="/console/consents/{consent_id}/revoke"' in case.text
    form = await staff.get(f"{console}/console/consents/{consent_id}/revoke")
    assert form.status_code == 200
    assert "the guardian reads it in Slovenian" in form.text
    assert PRESET_REASONS["duplicate"] in form.text  # offered in the staff member's language

    # A form with no reason and no choice is explained and changes nothing.
    bad = await _post(staff, f"{console}/console/consents/{consent_id}/revoke/confirm", form.text)
    assert bad.status_code == 422
    assert "Enter the internal reason" in bad.text
    assert "Choose what the guardian reads." in bad.text

    fields = {"reason": REASON, "note": NOTE, "guardian": "preset:duplicate"}
    check = await _post(
        staff, f"{console}/console/consents/{consent_id}/revoke/confirm", form.text, fields
    )
    assert check.status_code == 200, check.text
    slovenian = translator("sl").gettext(PRESET_REASONS["duplicate"])
    assert slovenian in check.text  # what the guardian will read, in their language
    assert NOTE in check.text  # shown to staff as internal
    assert await db.fetchval("select status from consents where id = $1::uuid", consent_id) == (
        "granted"
    )

    back = await _post(
        staff, f"{console}/console/consents/{consent_id}/revoke/edit", check.text, fields
    )
    assert back.status_code == 200
    assert NOTE in back.text
    assert 'value="preset:duplicate" checked' in back.text

    done = await _post(staff, f"{console}/console/consents/{consent_id}/revoke", check.text, fields)
    assert done.status_code == 303
    assert done.headers["location"] == f"/console/subjects/{subject}?done=revoked"
    case = await staff.get(f"{console}{done.headers['location']}")
    assert "The consent was revoked." in case.text
    assert NOTE in case.text  # the timeline
    assert await db.fetchval("select status from consents where id = $1::uuid", consent_id) == (
        "revoked"
    )
    actors = await db.fetch(
        "select action, actor from audit_events where subject_id = $1 and actor like 'staff:%'",
        subject,
    )
    assert {("consent.revoked", "staff:support"), ("consent.note", "staff:support")} <= {
        (r["action"], r["actor"]) for r in actors
    }
    assert ("console.viewed", "staff:support") in {(r["action"], r["actor"]) for r in actors}

    await console_worker.deliver_due()
    [email] = mailbox.to(GUARDIAN)
    assert slovenian in email.text
    assert NOTE not in email.text
    assert REASON not in email.text

    again = await _post(staff, f"{console}/console/consents/{consent_id}/revoke", case.text, fields)
    assert again.status_code == 409
    assert "no longer in force" in again.text


async def test_a_revocation_without_its_csrf_token_is_refused_and_changes_nothing(
    console: str,
    db: asyncpg.Connection,
    console_worker: Worker,
    mailbox: Any,
    guardian: httpx.AsyncClient,
    staff: httpx.AsyncClient,
) -> None:
    subject = "child-actions-csrf"
    consent_id, _ = await _granted(console, db, console_worker, mailbox, guardian, subject)
    await sign_in(staff, console, "admin")
    for path in (
        f"/console/consents/{consent_id}/revoke",
        f"/console/consents/{consent_id}/unlock-withdrawal",
    ):
        answer = await staff.post(f"{console}{path}", data={"reason": REASON, "guardian": "none"})
        assert answer.status_code == 403
        assert "The form was not accepted" in answer.text
    assert await db.fetchval("select status from consents where id = $1::uuid", consent_id) == (
        "granted"
    )
    assert (
        await db.fetchval("select count(*) from audit_events where action = 'consent.revoked'") == 0
    )


async def test_a_reminder_goes_out_and_the_limit_is_a_readable_429(
    console: str,
    db: asyncpg.Connection,
    console_worker: Worker,
    mailbox: Any,
    staff: httpx.AsyncClient,
) -> None:
    case = await _pending(console, db, console_worker, mailbox, "child-actions-remind", "de")
    mailbox.clear()
    await sign_in(staff, console, "support")
    page = await staff.get(f"{console}/console/subjects/{case.subject}")
    assert f'action="/console/requests/{case.request_id}/remind"' in page.text
    sent = await _post(staff, f"{console}/console/requests/{case.request_id}/remind", page.text)
    assert sent.status_code == 303
    assert sent.headers["location"].endswith("?done=reminded")
    assert await console_worker.deliver_due() >= 1
    [reminder] = mailbox.to(GUARDIAN)
    assert guardian_link(reminder.text) != case.link

    again = await _post(staff, f"{console}/console/requests/{case.request_id}/remind", page.text)
    assert again.status_code == 429
    assert int(again.headers["retry-after"]) > 0
    assert "The reminder limit is reached" in again.text
    assert "Nothing was changed." in again.text
    reminded = await db.fetchval(
        "select count(*) from audit_events where action = 'request.reminded' and actor = $1",
        "staff:support",
    )
    assert reminded == 1


async def test_a_locked_review_link_is_unlocked(
    console: str,
    db: asyncpg.Connection,
    console_worker: Worker,
    mailbox: Any,
    guardian: httpx.AsyncClient,
    staff: httpx.AsyncClient,
) -> None:
    case = await _pending(console, db, console_worker, mailbox, "child-actions-unlock", "sl")
    for _ in range(5):  # forged submissions, without the form's CSRF token
        await guardian.post(path_of(case.link), data={"decision": "grant"})
    assert (await guardian.get(path_of(case.link))).status_code == 429
    await sign_in(staff, console, "support")
    page = await staff.get(f"{console}/console/subjects/{case.subject}")
    assert "review link is locked" in page.text
    done = await _post(staff, f"{console}/console/requests/{case.request_id}/unlock", page.text)
    assert done.status_code == 303
    assert done.headers["location"].endswith("?done=unlocked")
    assert (await guardian.get(path_of(case.link))).status_code == 200
    event = await db.fetchrow("select actor from audit_events where action = 'request.unlocked'")
    assert event["actor"] == "staff:support"
    # Not locked any more: unlocking again is refused, readable, and changes nothing.
    again = await _post(staff, f"{console}/console/requests/{case.request_id}/unlock", page.text)
    assert again.status_code == 409
    assert "not locked" in again.text


async def test_a_locked_withdrawal_link_is_unlocked(
    console: str,
    db: asyncpg.Connection,
    console_worker: Worker,
    mailbox: Any,
    guardian: httpx.AsyncClient,
    staff: httpx.AsyncClient,
) -> None:
    consent_id, withdraw_path = await _granted(
        console, db, console_worker, mailbox, guardian, "child-actions-wlock"
    )
    for _ in range(5):
        await guardian.post(withdraw_path, data={"confirm": "yes"})
    assert (await guardian.get(withdraw_path)).status_code == 429
    await sign_in(staff, console, "admin")
    page = await staff.get(f"{console}/console/subjects/child-actions-wlock")
    assert "withdrawal link is locked" in page.text
    done = await _post(
        staff, f"{console}/console/consents/{consent_id}/unlock-withdrawal", page.text
    )
    assert done.status_code == 303
    assert (await guardian.get(withdraw_path)).status_code == 200
    event = await db.fetchrow(
        "select actor from audit_events where action = 'consent.withdrawal_unlocked'"
    )
    assert event["actor"] == "staff:admin"


async def test_cancelling_a_pending_request_is_confirmed_first(
    console: str,
    db: asyncpg.Connection,
    console_worker: Worker,
    mailbox: Any,
    guardian: httpx.AsyncClient,
    staff: httpx.AsyncClient,
) -> None:
    case = await _pending(console, db, console_worker, mailbox, "child-actions-cancel", "sl")
    await sign_in(staff, console, "support")
    confirm = await staff.get(f"{console}/console/requests/{case.request_id}/cancel")
    assert confirm.status_code == 200
    assert "child-actions-cancel" in confirm.text
    assert (
        await db.fetchval(
            "select status from consent_requests where id = $1::uuid", case.request_id
        )
        == "pending"
    )
    done = await _post(staff, f"{console}/console/requests/{case.request_id}/cancel", confirm.text)
    assert done.status_code == 303
    assert done.headers["location"] == "/console/subjects/child-actions-cancel?done=cancelled"
    row = await db.fetchrow(
        "select status, guardian_email_enc from consent_requests where id = $1::uuid",
        case.request_id,
    )
    assert row["status"] == "cancelled"
    assert row["guardian_email_enc"] is None
    event = await db.fetchrow(
        "select actor, reason from audit_events where action = 'request.cancelled'"
    )
    assert event["actor"] == "staff:support"
    again = await _post(staff, f"{console}/console/requests/{case.request_id}/cancel", confirm.text)
    assert again.status_code == 409
    link = await guardian.get(path_of(case.link))
    assert link.status_code in (404, 410)
