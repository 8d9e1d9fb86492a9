"""The guardian's journey in a real Chromium on a phone-sized screen, against a real server.

The app runs under uvicorn on a loopback port (not the ASGI transport), the emails go through
a real SMTP server, and the guardian clicks through the pages with Playwright. The pages'
strict Content-Security-Policy is exercised for real: a violation shows up as a console error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import pytest_asyncio

from service.app import create_app
from service.clock import SystemClock
from service.dev.mailcatcher import Mailbox
from service.dev.pgcluster import free_port
from service.settings import Settings, load_settings
from service.worker import Worker
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, browser_unavailable, live_server
from tests.support.credentials import make_api_key
from tests.support.guardian_client import guardian_link
from tests.support.service import worker_for

if TYPE_CHECKING:
    from playwright.async_api import Browser, ConsoleMessage, Page, Request

UNAVAILABLE = browser_unavailable()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or ""),
]

OPERATOR = "Učilnica Tutoring"
GUARDIAN = "Parent.One@Example.com"
GUARDIAN_INBOX = "Parent.One@example.com"  # the domain is normalised
CHILD = {
    "subject_id": "child-7",
    "birth_date": date(date.today().year - 10, 4, 1).isoformat(),
    "country": "SI",
    "guardian_email": GUARDIAN,
    "purposes": ["tutoring", "progress_reports", "newsletter"],
}
PHONE_WIDTH, PHONE_HEIGHT = 390, 844
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --- fixtures ---------------------------------------------------------------------------------


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
def port() -> int:
    return free_port()


@pytest.fixture
def live_settings(base_env: dict[str, str], port: int) -> Settings:
    return load_settings({**base_env, "CONSENT_PUBLIC_URL": f"http://127.0.0.1:{port}"})


@pytest.fixture
async def server(live_settings: Settings, port: int) -> AsyncIterator[str]:
    app = create_app(live_settings, clock=SystemClock())
    async with live_server(app, port) as base_url:
        assert base_url == live_settings.public_url
        yield base_url


@pytest.fixture
async def live_worker(live_settings: Settings) -> AsyncIterator[Worker]:
    async with worker_for(live_settings, SystemClock(), max_size=2) as worker:
        yield worker


@pytest.fixture
async def api(server: str, db: asyncpg.Connection) -> AsyncIterator[httpx.AsyncClient]:
    """The operator's app talking to the real server over HTTP with an API key."""
    key = await make_api_key(db, "consent:request", "consent:check")
    async with httpx.AsyncClient(
        base_url=server, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
    ) as client:
        yield client


@dataclass
class Phone:
    """A guardian's phone: one browser page and everything that went wrong on it."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        url = str(message.location.get("url", ""))
        # The pages declare no icon, so Chromium asks for /favicon.ico on its own and logs the
        # 404; that one is tolerated (a service gap, not a CSP violation).
        if message.type == "error" and urlsplit(url).path != "/favicon.ico":
            self.console_errors.append(f"{message.text} @ {url}")

    def on_page_error(self, error: Exception) -> None:
        self.console_errors.append(f"uncaught: {error}")

    def on_request_failed(self, request: Request) -> None:
        self.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    def assert_clean(self) -> None:
        assert self.console_errors == [], "console errors (a CSP violation is one)"
        assert self.failed_requests == [], "requests that failed"


@pytest.fixture
async def phone(browser: Browser, server: str) -> AsyncIterator[Phone]:
    # Depends on `server` so that the browser context closes before the server stops.
    context = await browser.new_context(
        viewport={"width": PHONE_WIDTH, "height": PHONE_HEIGHT},
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
        locale="en-GB",
    )
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        phone = Phone(page)
        page.on("console", phone.on_console)
        page.on("pageerror", phone.on_page_error)
        page.on("requestfailed", phone.on_request_failed)
        yield phone
    finally:
        await context.close()


# --- helpers ----------------------------------------------------------------------------------


async def request_consent(api: httpx.AsyncClient) -> str:
    created = await api.post("/v1/consent-requests", json=CHILD)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "pending"
    return str(created.json()["id"])


async def emailed_link(worker: Worker, mailbox: Mailbox, server: str, *, withdraw: bool) -> str:
    """Deliver the one due email and return the guardian link in it (on the real server)."""
    mailbox.clear()
    assert await worker.deliver_due() == 1
    [message] = mailbox.to(GUARDIAN_INBOX)
    link = guardian_link(message.text)
    assert link.startswith(f"{server}/guardian/"), link
    assert link.startswith(f"{server}/guardian/withdraw/") == withdraw, link
    return link


async def check(api: httpx.AsyncClient, purpose: str) -> dict[str, Any]:
    response = await api.get(
        "/v1/consents/check", params={"subject_id": CHILD["subject_id"], "purpose": purpose}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def open_link(phone: Phone, link: str) -> None:
    response = await phone.page.goto(link, wait_until="load")
    assert response is not None
    assert response.status == 200, await response.text()
    csp = response.headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp


async def assert_fits_the_screen(page: Page) -> None:
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the phone's screen"


async def submit(page: Page, button: str, *, expected_status: int = 200) -> None:
    """Click a submit button and wait for the page that the POST returns."""
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.get_by_role("button", name=button, exact=True).click()
    response = await answer.value
    assert response.status == expected_status, await response.text()
    await page.wait_for_load_state("load")


async def review_and_give_consent(phone: Phone, link: str, screenshot: Path | None = None) -> None:
    from playwright.async_api import expect

    page = phone.page
    await open_link(phone, link)
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        f"{OPERATOR} asks for your consent"
    )
    await expect(page.locator(".operator")).to_have_text(OPERATOR)
    # Only the required purpose starts ticked: an optional one is consented to by ticking it.
    await expect(page.get_by_role("checkbox", name="Tutoring")).to_be_checked()
    for title in ("Progress reports", "Newsletter"):
        await expect(page.get_by_role("checkbox", name=title)).not_to_be_checked()
    attestation = page.get_by_label("I am the parent or legal guardian", exact=False)
    await expect(attestation).not_to_be_checked()
    await assert_fits_the_screen(page)
    if screenshot is not None:
        await page.screenshot(path=str(screenshot), full_page=True)

    await attestation.check()
    await page.get_by_role("checkbox", name="Progress reports").check()
    await expect(page.get_by_role("checkbox", name="Newsletter")).not_to_be_checked()

    await submit(page, "Give consent")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Thank you, your consent has been recorded"
    )


# --- journeys ---------------------------------------------------------------------------------


async def test_guardian_gives_consent_on_a_phone(
    api: httpx.AsyncClient,
    live_worker: Worker,
    mailbox: Mailbox,
    phone: Phone,
    server: str,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    request_id = await request_consent(api)
    link = await emailed_link(live_worker, mailbox, server, withdraw=False)

    screenshot = tmp_path / "review.png"
    await review_and_give_consent(phone, link, screenshot)
    image = screenshot.read_bytes()
    assert image.startswith(PNG_SIGNATURE)
    assert len(image) > 1000

    page = phone.page
    await expect(page.locator("main")).to_contain_text("You consented to:")
    granted, refused = page.locator("ul.titles").nth(0), page.locator("ul.titles").nth(1)
    await expect(granted.get_by_role("listitem")).to_have_text(["Tutoring", "Progress reports"])
    await expect(refused.get_by_role("listitem")).to_have_text(["Newsletter"])
    await assert_fits_the_screen(page)
    phone.assert_clean()

    status = await api.get(f"/v1/consent-requests/{request_id}")
    assert status.json()["status"] == "granted"
    tutoring = await check(api, "tutoring")
    assert (tutoring["allowed"], tutoring["status"]) == (True, "granted")
    assert tutoring["token"]
    assert (await check(api, "progress_reports"))["allowed"] is True
    newsletter = await check(api, "newsletter")
    assert newsletter["allowed"] is False


async def test_guardian_refuses_consent(
    api: httpx.AsyncClient, live_worker: Worker, mailbox: Mailbox, phone: Phone, server: str
) -> None:
    from playwright.async_api import expect

    request_id = await request_consent(api)
    link = await emailed_link(live_worker, mailbox, server, withdraw=False)
    page = phone.page
    await open_link(phone, link)
    await expect(page.get_by_role("heading", level=1)).to_contain_text(OPERATOR)

    await submit(page, "Refuse consent")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Consent refused")
    await expect(page.locator("main")).to_contain_text("No data about your child")
    phone.assert_clean()

    status = await api.get(f"/v1/consent-requests/{request_id}")
    assert status.json()["status"] == "denied"
    for purpose in ("tutoring", "newsletter"):
        body = await check(api, purpose)
        assert (body["allowed"], body["status"]) == (False, "denied")


async def test_missing_attestation_is_explained_and_keeps_the_choices(
    api: httpx.AsyncClient, live_worker: Worker, mailbox: Mailbox, phone: Phone, server: str
) -> None:
    from playwright.async_api import expect

    await request_consent(api)
    link = await emailed_link(live_worker, mailbox, server, withdraw=False)
    page = phone.page
    await open_link(phone, link)
    await page.get_by_role("checkbox", name="Progress reports").check()

    await submit(page, "Give consent", expected_status=422)
    await expect(page.get_by_role("alert")).to_be_visible()
    await expect(page.get_by_role("checkbox", name="Newsletter")).not_to_be_checked()
    await expect(page.get_by_role("checkbox", name="Progress reports")).to_be_checked()
    attestation = page.get_by_label("I am the parent or legal guardian", exact=False)
    await expect(attestation).not_to_be_checked()
    assert (await check(api, "tutoring"))["status"] == "pending"

    # Once corrected, the same page (and its fresh CSRF token) is accepted.
    await attestation.check()
    await submit(page, "Give consent")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Thank you, your consent has been recorded"
    )
    # Chromium logs the 422 answer (a page with the errors on it) as a failed load; expected.
    rejected = f"the server responded with a status of 422 (Unprocessable Entity) @ {link}"
    phone.console_errors[:] = [e for e in phone.console_errors if not e.endswith(rejected)]
    phone.assert_clean()
    assert (await check(api, "tutoring"))["allowed"] is True
    assert (await check(api, "newsletter"))["allowed"] is False


async def test_guardian_withdraws_from_the_confirmation_email(
    api: httpx.AsyncClient, live_worker: Worker, mailbox: Mailbox, phone: Phone, server: str
) -> None:
    from playwright.async_api import expect

    await request_consent(api)
    link = await emailed_link(live_worker, mailbox, server, withdraw=False)
    await review_and_give_consent(phone, link)
    assert (await check(api, "tutoring"))["allowed"] is True

    withdraw_link = await emailed_link(live_worker, mailbox, server, withdraw=True)
    page = phone.page
    await open_link(phone, withdraw_link)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Withdraw your consent")
    # Every purpose still granted, none ticked: the guardian ticks what to withdraw.
    for title in ("Tutoring", "Progress reports"):
        await expect(page.get_by_role("checkbox", name=title)).not_to_be_checked()
    await expect(page.get_by_role("checkbox", name="Newsletter")).to_have_count(0)
    await assert_fits_the_screen(page)
    # Looking at the page changed nothing (mail scanners prefetch links).
    assert (await check(api, "tutoring"))["allowed"] is True

    for title in ("Tutoring", "Progress reports"):
        await page.get_by_role("checkbox", name=title).check()
    await submit(page, "Withdraw consent")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Your consent has been withdrawn"
    )
    phone.assert_clean()

    for purpose in ("tutoring", "progress_reports"):
        body = await check(api, purpose)
        assert (body["allowed"], body["status"]) == (False, "withdrawn")
