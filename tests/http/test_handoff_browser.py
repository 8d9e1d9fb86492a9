"""The handoff in real Chromium, with two browser contexts: the child's screen shows the code
and the QR code from the app's answer; the parent, on their own phone, types the code, gives
and confirms their address with the code emailed by the real SMTP path, and grants. The check
then allows. Every handoff page passes axe-core at phone size."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import date
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from service.dev.mailcatcher import Mailbox
from service.worker import Worker
from tests.support import browser as support
from tests.support.axe import assert_no_serious_violations, axe_test_marks
from tests.support.browser import browser_test_marks, phone_context

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

pytestmark = browser_test_marks()

PARENT = "handoff.browser@example.com"


@pytest.fixture
async def parent(browser: Browser, server: str) -> AsyncIterator[BrowserContext]:
    async with phone_context(browser, locale="en-GB") as context:
        yield context


@pytest.fixture
async def child(browser: Browser, server: str) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        await context.close()


async def open_without_address(api: httpx.AsyncClient, subject_id: str) -> dict[str, Any]:
    created = await api.post(
        "/v1/consent-requests",
        json={
            "subject_id": subject_id,
            "birth_date": date(date.today().year - 10, 4, 1).isoformat(),
            "country": "SI",
            "purposes": ["tutoring", "progress_reports"],
            "child_hint": "mia_2016",
        },
    )
    assert created.status_code == 201, created.text
    answer: dict[str, Any] = created.json()
    return answer


async def show_on_childs_screen(
    api: httpx.AsyncClient, context: BrowserContext, created: dict[str, Any]
) -> Page:
    """What the app's signup page would show: the code, where to type it, and the QR code."""
    svg = await api.get(f"/v1/consent-requests/{created['id']}/handoff.svg")
    assert svg.status_code == 200, svg.text
    handoff = created["handoff"]
    screen = await context.new_page()
    await screen.set_content(
        "<!DOCTYPE html><html lang='en'><head><title>Ask a parent</title></head><body><main>"
        f"<p>Ask your parent to open <span id='url'>{html.escape(handoff['url'])}</span> "
        f"and type <strong id='code'>{html.escape(handoff['code'])}</strong></p>"
        f"<figure id='qr'>{svg.text}</figure></main></body></html>"
    )
    return screen


async def press(page: Page, button: str) -> None:
    async with page.expect_navigation():
        await page.get_by_role("button", name=button, exact=True).click()


async def emailed_code(worker: Worker, mailbox: Mailbox) -> str:
    mailbox.clear()
    assert await worker.deliver_due() >= 1
    [message] = mailbox.to(PARENT)
    match = re.search(r"\b(\d{6})\b", message.text)
    assert match, message.text
    assert "mia_2016" in message.text
    return match.group(1)


async def test_the_parent_decides_on_their_own_phone(
    live_api: httpx.AsyncClient,
    live_worker: Worker,
    mailbox: Mailbox,
    parent: BrowserContext,
    child: BrowserContext,
    server: str,
) -> None:
    from playwright.async_api import expect

    created = await open_without_address(live_api, "child-handoff-browser")
    screen = await show_on_childs_screen(live_api, child, created)
    await expect(screen.locator("#qr svg")).to_be_visible()
    code = (await screen.locator("#code").inner_text()).strip()
    url = (await screen.locator("#url").inner_text()).strip()
    assert url == f"{server}/guardian/code"

    phone = await parent.new_page()
    opened = await phone.goto(url)
    assert opened is not None
    assert opened.status == 200
    heading = phone.get_by_role("heading", level=1)
    await expect(heading).to_have_text("Enter the code from the child's screen")
    await phone.get_by_label("Code", exact=True).fill(code)
    await press(phone, "Continue")
    await expect(heading).to_have_text("Your email address")

    await phone.get_by_label("Your email address").fill(PARENT)
    await press(phone, "Send code")
    await expect(heading).to_have_text("Enter the code from the email")
    await expect(phone.get_by_text("h***@e***.com", exact=False)).to_be_visible()

    await phone.get_by_label("Code from the email").fill(await emailed_code(live_worker, mailbox))
    await press(phone, "Confirm")
    assert re.fullmatch(rf"{re.escape(server)}/guardian/[A-Za-z0-9_-]{{32,64}}", phone.url)
    await expect(phone.get_by_text("mia_2016", exact=False).first).to_be_visible()

    await phone.get_by_label("I am the parent or legal guardian", exact=False).check()
    await press(phone, "Give consent")
    await expect(heading).to_have_text("Thank you, your consent has been recorded")

    check = await support.check(live_api, "child-handoff-browser", "tutoring")
    assert (check["allowed"], check["status"]) == (True, "granted")

    # The child's screen cannot be used again: the code is spent and the QR code gone.
    spent = await live_api.get(f"/v1/consent-requests/{created['id']}/handoff.svg")
    assert spent.status_code == 409


@pytest.mark.parametrize("marks", [pytest.param(None, marks=axe_test_marks())])
async def test_every_handoff_page_passes_axe(
    live_api: httpx.AsyncClient,
    live_worker: Worker,
    mailbox: Mailbox,
    parent: BrowserContext,
    server: str,
    marks: None,
) -> None:
    created = await open_without_address(live_api, "child-handoff-axe")
    phone = await parent.new_page()
    await phone.goto(f"{server}/guardian/code")
    await assert_no_serious_violations(phone, "code")
    await phone.get_by_label("Code", exact=True).fill("AAAA-AAAA")
    await press(phone, "Continue")
    await assert_no_serious_violations(phone, "code not recognised")
    await phone.get_by_label("Code", exact=True).fill(created["handoff"]["code"])
    await press(phone, "Continue")
    await assert_no_serious_violations(phone, "address")
    await phone.get_by_label("Your email address").fill("not an address")
    await press(phone, "Send code")
    await assert_no_serious_violations(phone, "address with an error")
    await phone.get_by_label("Your email address").fill(PARENT)
    await press(phone, "Send code")
    await assert_no_serious_violations(phone, "one-time code")
    right = await emailed_code(live_worker, mailbox)
    await phone.get_by_label("Code from the email").fill(f"{(int(right) + 1) % 1_000_000:06d}")
    await press(phone, "Confirm")
    await assert_no_serious_violations(phone, "one-time code with an error")
