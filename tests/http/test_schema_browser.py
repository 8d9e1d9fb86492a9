"""/schema in a real Chromium with every other host blocked: Swagger UI renders the operations
from files this service serves, and the page breaks none of its own Content-Security-Policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from service.app import create_app
from service.clock import SystemClock
from service.dev.pgcluster import free_port
from service.settings import load_settings
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, browser_unavailable, live_server

if TYPE_CHECKING:
    from playwright.async_api import Browser, Route

UNAVAILABLE = browser_unavailable()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or ""),
]


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def browser() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def server(base_env: dict[str, str]) -> AsyncIterator[str]:
    port = free_port()
    settings = load_settings({**base_env, "CONSENT_PUBLIC_URL": f"http://127.0.0.1:{port}"})
    async with live_server(create_app(settings, clock=SystemClock()), port) as base_url:
        yield base_url


async def test_schema_renders_the_operations_offline(browser: Browser, server: str) -> None:
    own_host = urlsplit(server).netloc
    elsewhere: list[str] = []
    problems: list[str] = []
    context = await browser.new_context()
    try:

        async def only_this_service(route: Route) -> None:
            if urlsplit(route.request.url).netloc == own_host:
                await route.continue_()
            else:
                elsewhere.append(route.request.url)
                await route.abort()

        await context.route("**/*", only_this_service)
        page = await context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))

        await page.goto(f"{server}/schema")
        await page.wait_for_selector(".opblock", timeout=30_000)

        blocks = page.locator(".opblock")
        assert await blocks.count() >= 15
        paths = await page.locator(".opblock-summary-path").all_inner_texts()
        joined = " ".join(paths)
        assert "/v1/consent-requests" in joined.replace("\u200b", "")
        assert "/v1/consents/check" in joined.replace("\u200b", "")
        assert await page.locator(".btn.authorize").count() == 1, "security schemes are shown"
    finally:
        await context.close()

    assert elsewhere == [], "the docs reached for another host"
    assert problems == [], problems
