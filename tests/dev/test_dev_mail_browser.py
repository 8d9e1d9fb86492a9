"""/dev/mail in a real Chromium: the guardian email's HTML part shows inside its sandboxed
frame (no scripts), grouped under its consent request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest_asyncio

from service.app import create_app
from service.clock import SystemClock
from service.dev.mailbox_page import mailbox_routes
from service.dev.pgcluster import free_port
from service.settings import load_settings
from tests.support.browser import browser_test_marks, chromium, live_server
from tests.support.credentials import make_api_key
from tests.support.service import worker_for

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = browser_test_marks()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def test_the_html_part_renders_in_its_sandboxed_frame(
    browser: Browser, base_env: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    port = free_port()
    settings = load_settings({**base_env, "CONSENT_PUBLIC_URL": f"http://127.0.0.1:{port}"})
    app = create_app(settings, clock=SystemClock(), extra_routes=mailbox_routes(mailbox))
    key = await make_api_key(db, "consent:request")
    async with live_server(app, port) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            created = await client.post(
                "/v1/consent-requests",
                headers={"Authorization": f"Bearer {key}"},
                json={
                    "subject_id": "frame-child",
                    "birth_date": "2016-01-01",
                    "country": "SI",
                    "guardian_email": "frame.parent@example.com",
                    "purposes": ["tutoring"],
                    "locale": "en",
                },
            )
            assert created.status_code == 201, created.text
        async with worker_for(settings, SystemClock(), max_size=2) as worker:
            assert await worker.deliver_due() == 1

        context = await browser.new_context()
        try:
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{base_url}/dev/mail")

            heading = page.locator("section.mail-group h2").first
            assert created.json()["id"] in await heading.inner_text()
            frame_element = page.locator("iframe[sandbox]").first
            assert await frame_element.get_attribute("sandbox") == ""
            link = frame_element.content_frame.locator("a[href*='/guardian/']").first
            await link.wait_for(timeout=10_000)
            assert (await link.get_attribute("href") or "").startswith(f"{base_url}/guardian/")
        finally:
            await context.close()
    assert errors == []
