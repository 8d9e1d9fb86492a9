"""Rights work in the console in Chromium, signed in through the development identity
provider: support takes the overdue rights request (shown first) to done from the queue; admin
erases a child by typing its id; support is refused the erasure page; an idle session goes
back to sign-in; the rights pages pass axe and read at 390 px."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.clock import ManualClock
from service.dev.identity_provider import DevIdentityProvider
from service.http.console.times import console_timezone
from service.settings import Settings
from tests.support.axe import assert_no_serious_violations, axe_test_marks
from tests.support.browser import PHONE_WIDTH, browser_test_marks, live_server, phone_context
from tests.support.console import console_settings, console_test_marks, csrf_token, sign_in
from tests.support.credentials import make_api_key
from tests.support.flows import check, create_request

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

pytestmark = [*browser_test_marks(), *console_test_marks()]

GUARDIAN = "mother.rights@example.com"
SUBJECT = "child-rights-browser-1"
LATE_SUBJECT = "child-rights-browser-2"
IDLE_SECONDS = 60
[AXE] = axe_test_marks()


@pytest.fixture
def console_clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def settings_for_console(
    base_env: dict[str, str], console_port: int, identity_provider: DevIdentityProvider
) -> Settings:
    return console_settings(
        base_env,
        console_port,
        identity_provider.issuer,
        CONSENT_CONSOLE_IDLE_TIMEOUT=str(IDLE_SECONDS),
    )


@pytest.fixture
async def console(
    settings_for_console: Settings, console_port: int, console_clock: ManualClock
) -> AsyncIterator[str]:
    app = create_app(settings_for_console, clock=console_clock)
    async with live_server(app, console_port) as base_url:
        yield base_url


@pytest.fixture
async def api(console: str, db: asyncpg.Connection) -> AsyncIterator[httpx.AsyncClient]:
    key = await make_api_key(db, "consent:request", "consent:check")
    async with httpx.AsyncClient(
        base_url=console, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
    ) as client:
        yield client


@pytest.fixture
async def subject(api: httpx.AsyncClient) -> str:
    await create_request(
        api, dict(api.headers), subject_id=SUBJECT, email=GUARDIAN, birth_date="2015-04-01"
    )
    return SUBJECT


@pytest.fixture
async def two_requests(
    console: str, subject: str, console_clock: ManualClock, settings_for_console: Settings
) -> None:
    """A request received today, and one received 20 days ago (overdue), recorded through
    the console's own form by another support session."""
    zone = ZoneInfo(console_timezone(settings_for_console))
    late = (console_clock.now() - timedelta(days=20)).astimezone(zone)
    async with httpx.AsyncClient(timeout=10.0) as other:
        token = csrf_token((await sign_in(other, console, "support")).text)
        for subject_id, kind, received in (
            (subject, "access", ""),
            (LATE_SUBJECT, "erasure", late.strftime("%Y-%m-%dT%H:%M")),
        ):
            answer = await other.post(
                f"{console}/console/subjects/{subject_id}/requests",
                data={
                    "_csrf_token": token,
                    "kind": kind,
                    "channel": "staff_letter",
                    "received_at": received,
                },
            )
            assert answer.status_code == 303, answer.text


async def _desktop(browser: Browser) -> BrowserContext:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    return context


async def _sign_in(page: Page, console: str, button: str, path: str = "/console") -> None:
    await page.goto(f"{console}{path}")
    await page.get_by_role("button", name=button).click()
    await page.wait_for_url(f"{console}{path}")


async def test_support_takes_the_overdue_request_to_done_from_the_queue(
    browser: Browser, console: str, two_requests: None, db: asyncpg.Connection
) -> None:
    context = await _desktop(browser)
    try:
        page = await context.new_page()
        await _sign_in(page, console, "Sam Support (support)")
        await page.get_by_role("link", name="Rights requests").click()
        await page.wait_for_url(f"{console}/console/requests")
        first = page.locator(".queue-item").first
        heading = await first.get_by_role("heading").inner_text()
        assert heading.startswith("Overdue")
        assert LATE_SUBJECT in heading
        await first.get_by_text("Move this request on").click()
        await first.get_by_label("done").check()
        await first.get_by_label("Outcome, or the reason for a refusal").fill(
            "Erased; the guardian was told by letter."
        )
        await first.get_by_role("button", name="Save").click()
        await page.wait_for_url(f"{console}/console/requests?done=request_moved")
        await page.get_by_text("The rights request was moved on.").wait_for()
        # Now closed, it goes below the open one and no longer reads overdue.
        assert await page.locator(".overdue-mark").count() == 0
        last = page.locator(".queue-item").last
        assert LATE_SUBJECT in await last.get_by_role("heading").inner_text()
        assert "done" in await last.inner_text()
    finally:
        await context.close()
    row = await db.fetchrow(
        "select status, outcome, handler from data_requests where subject_id = $1", LATE_SUBJECT
    )
    assert (row["status"], row["handler"]) == ("done", "support")
    assert row["outcome"] == "Erased; the guardian was told by letter."


async def test_admin_erases_a_child_by_typing_its_id(
    browser: Browser, console: str, subject: str, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    context = await _desktop(browser)
    try:
        page = await context.new_page()
        await _sign_in(page, console, "Ada Admin (support, admin)", f"/console/subjects/{subject}")
        await page.get_by_role("link", name="Erase the child's data…").click()
        await page.wait_for_url(f"{console}/console/subjects/{subject}/erase")
        await page.get_by_label("The guardian asked for erasure (Art. 17)").check()
        await page.get_by_label(f"Type the subject id {subject} to confirm").fill(subject + "x")
        await page.get_by_role("button", name="Erase for good").click()
        await page.get_by_role("heading", name="Nothing was erased").wait_for()
        assert (await check(api, dict(api.headers), subject))["status"] == "pending"
        await page.get_by_label(f"Type the subject id {subject} to confirm").fill(subject)
        await page.get_by_role("button", name="Erase for good").click()
        await page.get_by_role("heading", name="Erased").wait_for()
    finally:
        await context.close()
    assert (await check(api, dict(api.headers), subject))["status"] == "none"
    tombstone = await db.fetchrow(
        "select actor, subject_id, reason from audit_events where action = 'subject.erased'"
    )
    assert tombstone["actor"] == "staff:admin"
    assert tombstone["subject_id"] is None
    assert tombstone["reason"] == "guardian_request"


async def test_support_gets_403_on_the_erasure_page(
    browser: Browser, console: str, subject: str
) -> None:
    context = await _desktop(browser)
    try:
        page = await context.new_page()
        await _sign_in(page, console, "Sam Support (support)", f"/console/subjects/{subject}")
        assert await page.get_by_text("Export and erasure need the admin role.").is_visible()
        assert await page.get_by_role("link", name="Erase the child's data…").count() == 0
        answer = await page.goto(f"{console}/console/subjects/{subject}/erase")
        assert answer is not None
        assert answer.status == 403
        await page.get_by_role("heading", name="Not allowed").wait_for()
    finally:
        await context.close()


async def test_an_idle_session_returns_to_sign_in(
    browser: Browser,
    console: str,
    subject: str,
    console_clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    context = await _desktop(browser)
    try:
        page = await context.new_page()
        await _sign_in(page, console, "Sam Support (support)", "/console/requests")
        console_clock.advance(timedelta(seconds=IDLE_SECONDS + 1))
        visited: list[str] = []
        page.on("request", lambda request: visited.append(request.url))
        await page.goto(f"{console}/console/requests")
        # The identity provider still knows the browser, so the new sign-in needs no click:
        # the console sent it through sign-in and back to the page it asked for.
        assert f"{console}/console/auth/login?next=/console/requests" in visited
        assert any(url.startswith(f"{console}/console/auth/callback") for url in visited)
        assert page.url == f"{console}/console/requests"
    finally:
        await context.close()
    signed_in = await db.fetchval(
        "select count(*) from audit_events where action = 'console.signed_in'"
    )
    assert signed_in == 2


@pytest.mark.parametrize("user", ["support", "admin"])
async def test_the_rights_pages_read_on_a_phone(
    browser: Browser, console: str, two_requests: None, user: str
) -> None:
    button = "Sam Support (support)" if user == "support" else "Ada Admin (support, admin)"
    paths = ["/console/requests", f"/console/subjects/{SUBJECT}"]
    if user == "admin":
        paths.append(f"/console/subjects/{SUBJECT}/erase")
    async with phone_context(browser) as context:
        page = await context.new_page()
        await _sign_in(page, console, button, paths[0])
        for path in paths:
            await page.goto(f"{console}{path}")
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE_WIDTH, path


@AXE
@pytest.mark.parametrize("user", ["support", "admin"])
async def test_the_rights_pages_have_no_serious_accessibility_violation(
    browser: Browser, console: str, two_requests: None, user: str
) -> None:
    button = "Sam Support (support)" if user == "support" else "Ada Admin (support, admin)"
    context = await _desktop(browser)
    try:
        page = await context.new_page()
        await _sign_in(page, console, button, "/console/requests")
        await assert_no_serious_violations(page, "queue")
        await page.goto(f"{console}/console/subjects/{SUBJECT}")
        await assert_no_serious_violations(page, "case")
        if user == "admin":
            await page.goto(f"{console}/console/subjects/{SUBJECT}/erase")
            await assert_no_serious_violations(page, "erasure")
        else:
            await page.goto(f"{console}/console/requests")
            await page.get_by_text("Move this request on").first.click()
            await assert_no_serious_violations(page, "queue with a form open")
    finally:
        await context.close()
