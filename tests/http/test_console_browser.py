"""The support console in Chromium: sign in through the development identity provider as
support, find a child by the guardian's address, open the case and read its timeline and
emails; at 1280 px and at 390 px without sideways scrolling of the page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.clock import ManualClock
from service.settings import Settings
from service.worker import Worker
from tests.support.browser import PHONE_WIDTH, browser_test_marks, live_server, phone_context
from tests.support.console import console_test_marks
from tests.support.credentials import make_api_key
from tests.support.flows import create_request
from tests.support.service import worker_for

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [*browser_test_marks(), *console_test_marks()]

GUARDIAN = "mother.browser@example.com"
SUBJECT = "child-browser-7"


@pytest.fixture
async def console(settings_for_console: Settings, console_port: int) -> AsyncIterator[str]:
    app = create_app(settings_for_console, clock=ManualClock(datetime.now(UTC)))
    async with live_server(app, console_port) as base_url:
        yield base_url


@pytest.fixture
async def console_worker(settings_for_console: Settings) -> AsyncIterator[Worker]:
    async with worker_for(settings_for_console, ManualClock(datetime.now(UTC)), max_size=2) as w:
        yield w


@pytest.fixture
async def emailed_subject(console: str, db: asyncpg.Connection, console_worker: Worker) -> str:
    key = await make_api_key(db, "consent:request", "consent:check")
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as api:
        await create_request(
            api,
            {"Authorization": f"Bearer {key}"},
            subject_id=SUBJECT,
            email=GUARDIAN,
            birth_date="2015-04-01",
        )
    assert await console_worker.deliver_due() >= 1
    return SUBJECT


async def _sign_in_and_find(page: Page, console: str) -> None:
    await page.goto(f"{console}/console")
    await page.get_by_role("button", name="Sam Support (support)").click()
    await page.wait_for_url(f"{console}/console")
    await page.get_by_text("Signed in as Sam Support").wait_for()
    await page.get_by_label("Guardian email address").check()
    await page.get_by_label("Subject id or email address").fill(GUARDIAN)
    await page.get_by_role("button", name="Search", exact=True).click()
    await page.get_by_role("heading", name="Results for m***@e***.com").wait_for()
    assert GUARDIAN not in page.url


async def test_support_finds_a_child_and_reads_the_case(
    browser: Browser, console: str, emailed_subject: str
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        await _sign_in_and_find(page, console)
        await page.get_by_role("link", name=emailed_subject).click()
        await page.wait_for_url(f"{console}/console/subjects/{emailed_subject}")
        timeline = page.get_by_role("region", name="Timeline").first
        assert "request.created" in await timeline.inner_text()
        messages = page.get_by_role("region", name="Emails and webhooks").first
        text = await messages.inner_text()
        assert "email" in text
        assert "sent" in text
        purposes = await page.get_by_role("region", name="Status per purpose").first.inner_text()
        assert "pending" in purposes
    finally:
        await context.close()


async def test_the_case_reads_on_a_phone_and_works_with_the_keyboard(
    browser: Browser, console: str, emailed_subject: str
) -> None:
    async with phone_context(browser) as context:
        page = await context.new_page()
        await _sign_in_and_find(page, console)
        # The result link is reached with the Tab key and followed with Enter.
        link = page.get_by_role("link", name=emailed_subject)
        for _ in range(20):
            await page.keyboard.press("Tab")
            if await link.evaluate("node => node === document.activeElement"):
                break
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{console}/console/subjects/{emailed_subject}")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE_WIDTH
