"""Case actions in Chromium, signed in through the development identity provider as support:
find a child by the guardian's address, revoke with a preset reason and an internal note (the
guardian's Slovenian email reads the Slovenian reason and never the note; the timeline shows
the note), and resend a pending request (a new email reaches the SMTP server). The action pages
have no serious accessibility violation and fit a 390 px phone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.clock import ManualClock
from service.consent.revocation_reasons import PRESET_REASONS
from service.i18n import translator
from service.settings import Settings
from service.worker import Worker
from tests.support.axe import assert_no_serious_violations, axe_unavailable
from tests.support.browser import PHONE_WIDTH, browser_test_marks, live_server, phone_context
from tests.support.console import console_test_marks
from tests.support.credentials import make_api_key
from tests.support.flows import GRANT_ALL, create_request
from tests.support.guardian_client import guardian_link, open_and_submit
from tests.support.service import worker_for

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [*browser_test_marks(), *console_test_marks()]

GUARDIAN = "mama.actions@example.com"
GRANTED = "child-browser-revoke"
PENDING = "child-browser-resend"
NOTE = "Mother phoned on Monday; the older sibling's account is the one to keep."
REASON = "Duplicate consent found while checking ticket 7781"


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
async def family(
    console: str, db: asyncpg.Connection, console_worker: Worker, mailbox: Any
) -> None:
    """One child with a live consent (the request in Slovenian), one with a pending request."""
    key = {"Authorization": f"Bearer {await make_api_key(db, 'consent:request')}"}
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as client:
        for subject in (GRANTED, PENDING):
            await create_request(
                client,
                key,
                subject_id=subject,
                email=GUARDIAN,
                birth_date="2015-04-01",
                locale="sl",
            )
            assert await console_worker.deliver_due() >= 1
            if subject == GRANTED:
                link = guardian_link(mailbox.to(GUARDIAN)[-1].text)
                granted = await open_and_submit(client, link, GRANT_ALL)
                assert granted.status_code == 200, granted.text
    await console_worker.deliver_due()
    mailbox.clear()


async def _sign_in_and_find(page: Page, console: str) -> None:
    await page.goto(f"{console}/console")
    await page.get_by_role("button", name="Sam Support (support)").click()
    await page.wait_for_url(f"{console}/console")
    await page.get_by_label("Guardian email address").check()
    await page.get_by_label("Subject id or email address").fill(GUARDIAN)
    await page.get_by_role("button", name="Search", exact=True).click()
    await page.get_by_role("heading", name="Results for m***@e***.com").wait_for()


async def _check_accessible(page: Page, what: str) -> None:
    if axe_unavailable() is None:
        await assert_no_serious_violations(page, what)


async def test_support_revokes_with_a_preset_reason_and_resends_a_request(
    browser: Browser,
    console: str,
    family: None,
    console_worker: Worker,
    mailbox: Any,
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        await _sign_in_and_find(page, console)
        await page.get_by_role("link", name=GRANTED).click()
        await page.wait_for_url(f"{console}/console/subjects/{GRANTED}")
        await _check_accessible(page, "subject page with actions")
        await page.get_by_role("link", name="Revoke this consent…").click()
        await page.get_by_role("heading", name=f"Revoke the consent for child {GRANTED}").wait_for()
        await _check_accessible(page, "revoke form")
        await page.get_by_label("Internal reason (required)").fill(REASON)
        await page.get_by_label("Internal note (optional)").fill(NOTE)
        await page.get_by_label(PRESET_REASONS["duplicate"]).check()
        await page.get_by_role("button", name="Continue to the check").click()

        slovenian = translator("sl").gettext(PRESET_REASONS["duplicate"])
        preview = page.get_by_role("region", name="The email the guardian will read")
        await preview.wait_for()
        assert slovenian in await preview.inner_text()
        assert NOTE not in await preview.inner_text()
        await _check_accessible(page, "revocation check")
        await page.get_by_role("button", name="Revoke the consent").click()
        await page.wait_for_url(f"{console}/console/subjects/{GRANTED}?done=revoked")
        await page.get_by_role("status").get_by_text("The consent was revoked.").wait_for()
        timeline = await page.get_by_role("region", name="Timeline").first.inner_text()
        assert NOTE in timeline
        assert "consent.revoked" in timeline

        assert await console_worker.deliver_due() >= 1
        [email] = mailbox.to(GUARDIAN)
        assert slovenian in email.text
        assert NOTE not in email.text
        assert REASON not in email.text
        mailbox.clear()

        await page.get_by_role("link", name="Back to search").click()
        await page.get_by_label("Guardian email address").check()
        await page.get_by_label("Subject id or email address").fill(GUARDIAN)
        await page.get_by_role("button", name="Search", exact=True).click()
        await page.get_by_role("link", name=PENDING).click()
        await page.wait_for_url(f"{console}/console/subjects/{PENDING}")
        await page.get_by_role("button", name="Resend the request email").click()
        await page.wait_for_url(f"{console}/console/subjects/{PENDING}?done=reminded")
        await page.get_by_role("status").wait_for()
        assert await console_worker.deliver_due() >= 1
        [reminder] = mailbox.to(GUARDIAN)
        assert guardian_link(reminder.text)
    finally:
        await context.close()


async def test_the_action_pages_fit_a_phone_and_work_with_the_keyboard(
    browser: Browser, console: str, family: None, db: asyncpg.Connection
) -> None:
    consent_id = await db.fetchval("select id::text from consents where subject_id = $1", GRANTED)
    async with phone_context(browser) as context:
        page = await context.new_page()
        await _sign_in_and_find(page, console)
        await page.goto(f"{console}/console/subjects/{GRANTED}")
        link = page.get_by_role("link", name="Revoke this consent…")
        for _ in range(60):
            await page.keyboard.press("Tab")
            if await link.evaluate("node => node === document.activeElement"):
                break
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{console}/console/consents/{consent_id}/revoke")
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
        await page.get_by_label("Internal reason (required)").fill(REASON)
        await page.get_by_label(PRESET_REASONS["guardian_request"]).check()
        await page.keyboard.press("Tab")
        await page.get_by_role("button", name="Continue to the check").focus()
        await page.keyboard.press("Enter")
        await page.get_by_role("region", name="The email the guardian will read").wait_for()
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
        pending = await db.fetchval(
            "select id::text from consent_requests where subject_id = $1", PENDING
        )
        await page.goto(f"{console}/console/requests/{pending}/cancel")
        await page.get_by_role("button", name="Cancel the request").wait_for()
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
        await _check_accessible(page, "cancel confirmation")
