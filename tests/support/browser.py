"""Real-browser test support: the app on a real loopback socket, and where Chromium is.

The server runs under uvicorn in a thread with an event loop of its own; the app creates its
asyncpg pool in its lifespan, on that loop, so nothing is shared with the test's loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from litestar import Litestar

from service.dev.mailcatcher import Mailbox
from service.worker import Worker
from tests.support.guardian_client import guardian_link

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
HOW_TO_ENABLE = (
    "install Debian's chromium package: apt-get install chromium "
    "(make test does this when run as root)"
)
PHONE_WIDTH, PHONE_HEIGHT = 390, 844
STARTUP_SECONDS = 20.0
SHUTDOWN_SECONDS = 20.0


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return (
            "the playwright Python package is missing (pip install -e '.[test]'); "
            f"and {HOW_TO_ENABLE}"
        )
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} is missing; {HOW_TO_ENABLE}"
    return None


def browser_test_marks() -> list[pytest.MarkDecorator]:
    """A browser test module's ``pytestmark``: marked, and skipped where Chromium cannot run."""
    unavailable = browser_unavailable()
    return [
        pytest.mark.browser,
        pytest.mark.skipif(unavailable is not None, reason=unavailable or ""),
    ]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield launched
        finally:
            await launched.close()


@asynccontextmanager
async def phone_context(
    browser: Browser, *, locale: str | None = None, device_scale_factor: float | None = None
) -> AsyncIterator[BrowserContext]:
    """A phone-sized, touch browser context, closed when the block ends."""
    context = await browser.new_context(
        viewport={"width": PHONE_WIDTH, "height": PHONE_HEIGHT},
        device_scale_factor=device_scale_factor,
        is_mobile=True,
        has_touch=True,
        locale=locale,
    )
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        await context.close()


async def emailed_link(
    worker: Worker, mailbox: Mailbox, inbox: str, *, exactly_one: bool = True
) -> str:
    """Deliver what is due and return the guardian link in the one email to ``inbox``."""
    mailbox.clear()
    delivered = await worker.deliver_due()
    assert delivered == 1 if exactly_one else delivered >= 1
    [message] = mailbox.to(inbox)
    return guardian_link(message.text)


async def check(api: httpx.AsyncClient, subject_id: str, purpose: str) -> dict[str, Any]:
    response = await api.get(
        "/v1/consents/check", params={"subject_id": subject_id, "purpose": purpose}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def submit(page: Page, button: str, *, expected_status: int = 200) -> None:
    """Click a submit button and wait for the page that the POST returns."""
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.get_by_role("button", name=button, exact=True).click()
    response = await answer.value
    assert response.status == expected_status, await response.text()
    await page.wait_for_load_state("load")


async def _wait_for(condition: threading.Thread, seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while condition.is_alive():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@asynccontextmanager
async def live_server(app: Litestar, port: int, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` until the block ends; yields the base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            # Leave global logging alone: uvicorn's default dictConfig would bind handlers to
            # whatever sys.stderr pytest has installed at that moment.
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    base_url = f"http://{host}:{port}"
    thread.start()
    try:
        await _wait_until_healthy(base_url, thread)
        yield base_url
    finally:
        server.should_exit = True
        stopped = await _wait_for(thread, SHUTDOWN_SECONDS)
        assert stopped, f"the server on {base_url} did not stop within {SHUTDOWN_SECONDS}s"


async def _wait_until_healthy(base_url: str, thread: threading.Thread) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_SECONDS
    last_problem = "no answer yet"
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as probe:
        while True:
            if not thread.is_alive():
                raise RuntimeError(f"the server on {base_url} exited during startup")
            try:
                response = await probe.get("/healthz")
            except httpx.TransportError as exc:
                last_problem = repr(exc)
            else:
                if response.status_code == 200:
                    return
                last_problem = f"/healthz answered {response.status_code}"
            if loop.time() > deadline:
                raise TimeoutError(
                    f"the server on {base_url} was not healthy within {STARTUP_SECONDS}s: "
                    f"{last_problem}"
                )
            await asyncio.sleep(0.05)
