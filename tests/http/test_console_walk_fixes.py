"""What a walk through the support console found, as support reads it now: the status per
purpose says what is true of each purpose, the timeline reads in the staff member's language
with one row per run of views, a case view leaves one audit event, the resend limit is told in
the operator's zone with the way back to the case, and a guardian search tells the children
apart. Real HTTP, a real sign-in through the development identity provider, a real database."""

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
from service.consent.purposes import load_catalogue
from service.i18n import translator
from service.settings import Settings
from service.worker import Worker
from tests.support.browser import live_server
from tests.support.console import console_test_marks, csrf_token, sign_in
from tests.support.credentials import make_api_key
from tests.support.flows import WITHDRAW_HREF, create_request
from tests.support.guardian_client import guardian_link, open_and_submit, page_csrf
from tests.support.service import worker_for

pytestmark = console_test_marks()

GUARDIAN = "walk.fixes@example.com"
ASKED = ["tutoring", "progress_reports", "newsletter"]
PURPOSE_ROW = re.compile(
    r'<tr><th scope="row">([^<]+)</th><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>'
)


@pytest.fixture
def console_clock() -> ManualClock:
    # winter: Ljubljana (the default operator country's zone) is on standard time
    return ManualClock(datetime(2026, 1, 15, 11, 30, tzinfo=UTC))


@pytest.fixture
async def console(
    settings_for_console: Settings, console_port: int, console_clock: ManualClock
) -> AsyncIterator[str]:
    app = create_app(settings_for_console, clock=console_clock)
    async with live_server(app, console_port) as base_url:
        yield base_url


@pytest.fixture
async def worker(
    settings_for_console: Settings, console_clock: ManualClock
) -> AsyncIterator[Worker]:
    async with worker_for(settings_for_console, console_clock, max_size=2) as running:
        yield running


async def _open(
    console: str,
    db: asyncpg.Connection,
    worker: Worker,
    mailbox: Any,
    subject: str,
    **overrides: Any,
) -> tuple[str, str]:
    """A pending request; (request id, the guardian's link)."""
    key = await make_api_key(db, "consent:request")
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as api:
        request_id = await create_request(
            api,
            {"Authorization": f"Bearer {key}"},
            subject_id=subject,
            email=GUARDIAN,
            birth_date="2015-04-01",
            **overrides,
        )
    assert await worker.deliver_due() >= 1
    return str(request_id), guardian_link(mailbox.to(GUARDIAN)[-1].text)


def _purposes(page: str, locale: str = "en") -> dict[str, tuple[str, str, str]]:
    """Each catalogue purpose's row of "Status per purpose": (status, allowed, until)."""
    section = page.split('id="purposes-heading"', 1)[1].split("</section>", 1)[0]
    titles = {p.localized_title(locale): p.id for p in load_catalogue(None).purposes}
    rows = {titles[t]: (s, a, u) for t, s, a, u in PURPOSE_ROW.findall(section)}
    assert set(rows) == set(titles.values()), section
    return rows


def _section(page: str, heading: str) -> str:
    return page.split(f'id="{heading}"', 1)[1].split("</section>", 1)[0]


async def _post(client: httpx.AsyncClient, url: str, page: str, data: dict[str, Any]) -> Any:
    return await client.post(url, data={**data, "_csrf_token": csrf_token(page)})


async def test_each_purpose_says_what_is_true_of_it_before_and_after_a_revocation(
    console: str, db: asyncpg.Connection, worker: Worker, mailbox: Any
) -> None:
    subject = "child-walk-purposes"
    [never_asked] = [p.id for p in load_catalogue(None).purposes if p.id not in ASKED]
    _, link = await _open(console, db, worker, mailbox, subject)
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as guardian:
        # the guardian gives tutoring and the newsletter, not progress reports ...
        result = await open_and_submit(
            guardian,
            link,
            {"decision": "grant", "purposes": ["tutoring", "newsletter"], "attestation": "yes"},
        )
        assert result.status_code == 200, result.text
        match = WITHDRAW_HREF.search(result.text)
        assert match
        # ... and later withdraws the newsletter alone
        withdraw = match.group(1)
        token = await page_csrf(guardian, withdraw)
        done = await guardian.post(
            withdraw, data={"confirm": "yes", "purposes": ["newsletter"], "_csrf_token": token}
        )
        assert done.status_code == 200, done.text
    consent_id = await db.fetchval("select id::text from consents where subject_id = $1", subject)

    async with httpx.AsyncClient(base_url=console, timeout=10.0) as staff:
        await sign_in(staff, console, "support")
        page = await staff.get(f"/console/subjects/{subject}")
        rows = _purposes(page.text)
        status, allowed, until = rows["tutoring"]
        assert (status, allowed) == ("granted", "yes")
        assert "Central European Standard Time" in until
        assert rows["progress_reports"] == ("given, but not for this purpose", "no", "")
        assert rows["newsletter"][0].startswith("withdrawn by the guardian on ")
        assert "Central European Standard Time" in rows["newsletter"][0]
        assert rows["newsletter"][1:] == ("no", "")
        assert rows[never_asked] == ("not asked", "no", "")

        fields = {"reason": "Parent phoned support", "guardian": "preset:duplicate"}
        revoked = await _post(staff, f"/console/consents/{consent_id}/revoke", page.text, fields)
        assert revoked.status_code == 303, revoked.text
        page = await staff.get(revoked.headers["location"])
    rows = _purposes(page.text)
    assert rows["tutoring"] == ("revoked", "no", "")
    assert rows["progress_reports"] == ("not given by the guardian", "no", "")
    assert rows["newsletter"][0].startswith("withdrawn by the guardian on ")
    assert rows["newsletter"][1:] == ("no", "")
    assert rows[never_asked] == ("not asked", "no", "")
    actions = _section(page.text, "actions-heading")
    assert "No pending request and no consent in force." in actions
    assert "Nothing can be done" not in actions


async def test_a_pending_request_for_one_purpose_shows_the_others_as_not_asked(
    console: str, db: asyncpg.Connection, worker: Worker, mailbox: Any
) -> None:
    subject = "child-walk-pending"
    await _open(console, db, worker, mailbox, subject, purposes=["tutoring"])
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as staff:
        await sign_in(staff, console, "support")
        page = await staff.get(f"/console/subjects/{subject}")
    rows = _purposes(page.text)
    assert rows.pop("tutoring") == ("pending", "no", "")
    assert set(rows.values()) == {("not asked", "no", "")}


async def test_the_timeline_reads_in_slovenian_and_names_the_withdrawn_purposes(
    console: str, db: asyncpg.Connection, worker: Worker, mailbox: Any
) -> None:
    subject = "child-walk-timeline"
    _, link = await _open(console, db, worker, mailbox, subject)
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as guardian:
        result = await open_and_submit(
            guardian, link, {"decision": "grant", "purposes": ASKED, "attestation": "yes"}
        )
        match = WITHDRAW_HREF.search(result.text)
        assert match
        token = await page_csrf(guardian, match.group(1))
        done = await guardian.post(
            match.group(1),
            data={"confirm": "yes", "purposes": ["newsletter"], "_csrf_token": token},
        )
        assert done.status_code == 200, done.text
    headers = {"Accept-Language": "sl"}
    async with httpx.AsyncClient(base_url=console, timeout=10.0, headers=headers) as staff:
        await sign_in(staff, console, "support")
        page = await staff.get(f"/console/subjects/{subject}")
    assert page.status_code == 200
    say = translator("sl")
    timeline = _section(page.text, "timeline-heading")
    assert "purposes withdrawn by the guardian" not in timeline
    assert say.gettext("purposes withdrawn by the guardian") in timeline
    granted = say.gettext("granted")
    assert f"({say.gettext('pending')} → {granted})" in timeline
    assert "(pending → granted)" not in timeline
    newsletter = next(p for p in load_catalogue(None).purposes if p.id == "newsletter")
    assert f"({granted} → {granted}): {newsletter.localized_title('sl')}" in timeline


async def test_a_case_view_is_one_audit_event_and_runs_of_views_fold_into_one_row(
    console: str, db: asyncpg.Connection, worker: Worker, mailbox: Any
) -> None:
    subject = "child-walk-views"
    await _open(console, db, worker, mailbox, subject)
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as staff:
        await sign_in(staff, console, "support")
        for _ in range(4):
            page = await staff.get(f"/console/subjects/{subject}")
    events = await db.fetch(
        "select action from audit_events where subject_id = $1 and actor = 'staff:support'",
        subject,
    )
    assert [e["action"] for e in events] == ["console.viewed"] * 4  # the trail keeps each
    timeline = _section(page.text, "timeline-heading")
    # the fourth page shows the three views before it, in one row
    assert timeline.count('<code class="raw-id">console.viewed</code>') == 1
    assert "viewed 3 times, first at " in timeline
    assert "Case read through the staff API" not in timeline


async def test_the_resend_limit_is_told_in_the_operators_zone_with_the_way_back_to_the_case(
    console: str, db: asyncpg.Connection, worker: Worker, mailbox: Any
) -> None:
    subject = "child-walk-resend"
    request_id, _ = await _open(console, db, worker, mailbox, subject)
    remind = f"/console/requests/{request_id}/remind"
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as staff:
        await sign_in(staff, console, "support")
        page = await staff.get(f"/console/subjects/{subject}")
        assert "can be resent from" not in page.text
        sent = await _post(staff, remind, page.text, {})
        assert sent.status_code == 303
        page = await staff.get(sent.headers["location"])
        actions = _section(page.text, "actions-heading")
        # 11:30 UTC + 1 hour is 13:30 in Ljubljana
        assert "The request email can be resent from " in actions
        assert "13:30 (Central European Standard Time)" in actions
        assert '<button type="submit" disabled>Resend the request email</button>' in actions

        again = await _post(staff, remind, page.text, {})
    assert again.status_code == 429
    assert "The reminder limit is reached" in again.text
    assert "13:30 (Central European Standard Time)" in again.text
    assert "UTC" not in again.text
    assert f'href="/console/subjects/{subject}"' in again.text
    assert 'href="/console">' not in again.text.split("<main", 1)[-1]
    reminded = await db.fetchval(
        "select count(*) from audit_events where action = 'request.reminded' and subject_id = $1",
        subject,
    )
    assert reminded == 1


async def test_a_guardian_search_shows_each_childs_latest_status_and_hint(
    console: str, db: asyncpg.Connection, worker: Worker, mailbox: Any
) -> None:
    subject = "child-walk-search"
    await _open(console, db, worker, mailbox, subject, child_hint="mia_2016")
    headers = {"Accept-Language": "de"}
    async with httpx.AsyncClient(base_url=console, timeout=10.0, headers=headers) as staff:
        home = await sign_in(staff, console, "support")
        found = await _post(
            staff, "/console/search", home.text, {"by": "guardian", "query": GUARDIAN}
        )
    assert found.status_code == 200, found.text
    say = translator("de")
    results = _section(found.text, "results-heading")
    assert subject in results
    assert say.gettext("latest status: %(status)s", status=say.gettext("pending")) in results
    assert say.gettext("the child's hint: %(hint)s", hint="mia_2016") in results
    assert GUARDIAN not in found.text
