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

import httpx
import pytest

from service.dev.mailcatcher import Mailbox
from service.worker import Worker
from tests.support import browser as support
from tests.support.browser import browser_test_marks, phone_context, submit

if TYPE_CHECKING:
    from playwright.async_api import Browser, ConsoleMessage, Page, Request

pytestmark = browser_test_marks()

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
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --- fixtures ---------------------------------------------------------------------------------


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
    async with phone_context(browser, locale="en-GB", device_scale_factor=3) as context:
        page = await context.new_page()
        phone = Phone(page)
        page.on("console", phone.on_console)
        page.on("pageerror", phone.on_page_error)
        page.on("requestfailed", phone.on_request_failed)
        yield phone


# --- helpers ----------------------------------------------------------------------------------


async def request_consent(api: httpx.AsyncClient) -> str:
    created = await api.post("/v1/consent-requests", json=CHILD)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "pending"
    return str(created.json()["id"])


async def emailed_link(worker: Worker, mailbox: Mailbox, server: str, *, withdraw: bool) -> str:
    """Deliver the one due email and return the guardian link in it (on the real server)."""
    link = await support.emailed_link(worker, mailbox, GUARDIAN_INBOX)
    assert link.startswith(f"{server}/guardian/"), link
    assert link.startswith(f"{server}/guardian/withdraw/") == withdraw, link
    return link


async def check(api: httpx.AsyncClient, purpose: str) -> dict[str, Any]:
    return await support.check(api, str(CHILD["subject_id"]), purpose)


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
    live_api: httpx.AsyncClient,
    live_worker: Worker,
    mailbox: Mailbox,
    phone: Phone,
    server: str,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    request_id = await request_consent(live_api)
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

    status = await live_api.get(f"/v1/consent-requests/{request_id}")
    assert status.json()["status"] == "granted"
    tutoring = await check(live_api, "tutoring")
    assert (tutoring["allowed"], tutoring["status"]) == (True, "granted")
    assert tutoring["token"]
    assert (await check(live_api, "progress_reports"))["allowed"] is True
    newsletter = await check(live_api, "newsletter")
    assert newsletter["allowed"] is False


async def test_guardian_refuses_consent(
    live_api: httpx.AsyncClient, live_worker: Worker, mailbox: Mailbox, phone: Phone, server: str
) -> None:
    from playwright.async_api import expect

    request_id = await request_consent(live_api)
    link = await emailed_link(live_worker, mailbox, server, withdraw=False)
    page = phone.page
    await open_link(phone, link)
    await expect(page.get_by_role("heading", level=1)).to_contain_text(OPERATOR)

    await submit(page, "Refuse consent")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Consent refused")
    await expect(page.locator("main")).to_contain_text("No data about your child")
    phone.assert_clean()

    status = await live_api.get(f"/v1/consent-requests/{request_id}")
    assert status.json()["status"] == "denied"
    for purpose in ("tutoring", "newsletter"):
        body = await check(live_api, purpose)
        assert (body["allowed"], body["status"]) == (False, "denied")


async def test_missing_attestation_is_explained_and_keeps_the_choices(
    live_api: httpx.AsyncClient, live_worker: Worker, mailbox: Mailbox, phone: Phone, server: str
) -> None:
    from playwright.async_api import expect

    await request_consent(live_api)
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
    assert (await check(live_api, "tutoring"))["status"] == "pending"

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
    assert (await check(live_api, "tutoring"))["allowed"] is True
    assert (await check(live_api, "newsletter"))["allowed"] is False


async def test_guardian_withdraws_from_the_confirmation_email(
    live_api: httpx.AsyncClient, live_worker: Worker, mailbox: Mailbox, phone: Phone, server: str
) -> None:
    from playwright.async_api import expect

    await request_consent(live_api)
    link = await emailed_link(live_worker, mailbox, server, withdraw=False)
    await review_and_give_consent(phone, link)
    assert (await check(live_api, "tutoring"))["allowed"] is True

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
    assert (await check(live_api, "tutoring"))["allowed"] is True

    for title in ("Tutoring", "Progress reports"):
        await page.get_by_role("checkbox", name=title).check()
    await submit(page, "Withdraw consent")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Your consent has been withdrawn"
    )
    phone.assert_clean()

    for purpose in ("tutoring", "progress_reports"):
        body = await check(live_api, purpose)
        assert (body["allowed"], body["status"]) == (False, "withdrawn")
