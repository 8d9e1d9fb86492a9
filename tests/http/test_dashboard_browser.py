"""The guardian dashboard in a real Chromium against a real server, the real SMTP sink and the
worker: one address consented for two children; the parent asks for a sign-in link at
/guardian, reads it from the mail, signs in, sees both children and withdraws one purpose for
one of them. The check endpoint then refuses that purpose for that child only. Every page of
the way passes axe-core at phone (390 px) and desktop (1280 px) width.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date
from typing import TYPE_CHECKING

import httpx
import pytest

from service.dev.mailcatcher import Mailbox
from service.worker import Worker
from tests.support import browser as support
from tests.support.axe import assert_no_serious_violations, axe_unavailable
from tests.support.browser import browser_test_marks, submit
from tests.support.flows import grant_via_link

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = browser_test_marks()

PARENT = "dashboard.parent@example.com"
CHILDREN = {"child-dash-browser-a": "ana.k", "child-dash-browser-b": "bine.k"}
WIDTHS = {"phone": (390, 844), "desktop": (1280, 900)}
SIGN_IN_LINK = re.compile(r"https?://[^\s<>\"]+/guardian/sign-in/[A-Za-z0-9_-]+")


@pytest.fixture(params=list(WIDTHS))
async def page(
    browser: Browser, server: str, request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    width, height = WIDTHS[str(request.param)]
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        locale="en-GB",
        is_mobile=request.param == "phone",
        has_touch=request.param == "phone",
    )
    context.set_default_timeout(10_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def _consent_for_both(
    api: httpx.AsyncClient, worker: Worker, mailbox: Mailbox, server: str
) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=10.0) as guardian:
        for subject, hint in CHILDREN.items():
            created = await api.post(
                "/v1/consent-requests",
                json={
                    "subject_id": subject,
                    "birth_date": date(date.today().year - 10, 4, 1).isoformat(),
                    "country": "SI",
                    "guardian_email": PARENT,
                    "purposes": ["tutoring", "progress_reports", "newsletter"],
                    "child_hint": hint,
                },
            )
            assert created.status_code == 201, created.text
            link = await support.emailed_link(worker, mailbox, PARENT)
            await grant_via_link(guardian, link)
            await worker.deliver_due()  # the confirmation
    mailbox.clear()


async def _accessible(page: Page) -> None:
    if axe_unavailable() is None:
        await assert_no_serious_violations(page)


async def test_a_parent_signs_in_sees_both_children_and_withdraws_one_purpose_of_one(
    live_api: httpx.AsyncClient,
    live_worker: Worker,
    mailbox: Mailbox,
    page: Page,
    server: str,
) -> None:
    from playwright.async_api import expect

    await _consent_for_both(live_api, live_worker, mailbox, server)

    opened = await page.goto(f"{server}/guardian")
    assert opened is not None
    assert opened.status == 200
    await _accessible(page)
    await page.get_by_label("Your email address").fill(PARENT)
    await submit(page, "Send me a sign-in link")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    await _accessible(page)

    assert await live_worker.deliver_due() == 1
    [message] = mailbox.to(PARENT)
    assert message.subject.endswith("your sign-in link")
    match = SIGN_IN_LINK.search(message.text)
    assert match, message.text
    assert match.group(0) in message.html
    continued = await page.goto(match.group(0))
    assert continued is not None
    assert continued.status == 200
    await _accessible(page)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Continue", exact=True).click()
    assert page.url.endswith("/guardian/dashboard")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your children's consents")
    sections = page.locator("section.child")
    await expect(sections).to_have_count(2)
    for hint in CHILDREN.values():
        await expect(page.get_by_role("heading", level=2, name=f"Account “{hint}”")).to_be_visible()
    await _accessible(page)

    first = sections.filter(has=page.get_by_role("heading", name="Account “ana.k”"))
    await submit_in(page, first, "Withdraw consent for Newsletter")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Withdraw your consent")
    await expect(page.locator(".child-hint")).to_contain_text("ana.k")
    await _accessible(page)
    await submit(page, "Withdraw consent")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Part of your consent has been withdrawn"
    )
    await _accessible(page)

    a, b = list(CHILDREN)
    assert (await support.check(live_api, a, "newsletter"))["allowed"] is False
    assert (await support.check(live_api, a, "tutoring"))["allowed"] is True
    assert (await support.check(live_api, a, "progress_reports"))["allowed"] is True
    assert (await support.check(live_api, b, "newsletter"))["allowed"] is True
    assert (await support.check(live_api, b, "tutoring"))["allowed"] is True

    await page.get_by_role("link", name="Back to your children's consents").click()
    await expect(sections).to_have_count(2)
    await expect(first.get_by_role("button", name="Withdraw consent for Newsletter")).to_have_count(
        0
    )
    await submit(page, "Sign out")
    await expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")
    again = await page.goto(f"{server}/guardian/dashboard")
    assert again is not None
    assert again.status == 401
    assert "ana.k" not in await page.content()


async def submit_in(page: Page, scope: object, button: str) -> None:
    """Press a button inside ``scope`` (a locator) and wait for the page its POST returns."""
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await scope.get_by_role("button", name=button, exact=True).click()  # type: ignore[attr-defined]
    response = await answer.value
    assert response.status == 200, await response.text()
    await page.wait_for_load_state("load")
