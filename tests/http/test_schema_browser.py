"""/schema in a real Chromium with every other host blocked: Swagger UI renders the operations
from files this service serves, and the page breaks none of its own Content-Security-Policy."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tests.support.browser import browser_test_marks

if TYPE_CHECKING:
    from playwright.async_api import Browser, Route

pytestmark = browser_test_marks()


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
