"""The guardian's rights page in a real Chromium on a 390 px phone, in English and Slovenian:
reached from the withdrawal page, nothing wider than the screen, a form error by its field, a
complaint acknowledged with its due date, and a copy of the data asked for and emailed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest

from service.consent.purposes import load_catalogue
from service.dev.mailcatcher import Mailbox
from service.i18n import translator
from service.worker import Worker
from tests.support import browser as support
from tests.support.browser import PHONE_WIDTH, browser_test_marks, phone_context, submit

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = browser_test_marks()

GUARDIAN = "browser.rights@example.com"
SUBJECT = "child-browser-rights"
BROWSER_LOCALES = {"en": "en-GB", "sl": "sl-SI"}


@pytest.fixture(params=["en", "sl"])
def locale(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def page(browser: Browser, server: str, locale: str) -> AsyncIterator[Page]:
    # Depends on `server` so that the browser context closes before the server stops.
    async with phone_context(browser, locale=BROWSER_LOCALES[locale]) as context:
        yield await context.new_page()


async def _overflow(page: Page) -> int:
    width: int = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return width


async def test_the_rights_page_on_a_phone(
    live_api: httpx.AsyncClient,
    live_worker: Worker,
    mailbox: Mailbox,
    page: Page,
    locale: str,
    db: asyncpg.Connection,
) -> None:
    from playwright.async_api import expect

    _ = translator(locale).gettext
    created = await live_api.post(
        "/v1/consent-requests",
        json={
            "subject_id": SUBJECT,
            "birth_date": date(date.today().year - 10, 4, 1).isoformat(),
            "country": "SI",
            "guardian_email": GUARDIAN,
            "purposes": ["tutoring", "progress_reports", "newsletter"],
            "locale": locale,
        },
    )
    assert created.status_code == 201, created.text
    await page.goto(await support.emailed_link(live_worker, mailbox, GUARDIAN))
    newsletter = load_catalogue(None).get("newsletter")
    assert newsletter is not None
    await page.get_by_role("checkbox", name=newsletter.localized_title(locale)).check()
    await page.get_by_label(
        _("I am the parent or legal guardian of this child and have parental responsibility")
    ).check()
    await submit(page, _("Give consent"))
    await page.goto(await support.emailed_link(live_worker, mailbox, GUARDIAN, exactly_one=False))

    await page.get_by_role("link", name=_("Your data and your rights")).click()
    await page.wait_for_load_state("load")
    heading = page.get_by_role("heading", level=1)
    await expect(heading).to_have_text(_("Your data and your rights"))
    rights_url = page.url
    assert "/guardian/rights/" in rights_url
    assert page.viewport_size is not None
    assert page.viewport_size["width"] == PHONE_WIDTH
    assert await _overflow(page) <= 0
    for section in (
        "Get a copy of your data",
        "Correct your email address",
        "Object to a use of your child's data",
        "Delete your child's data",
        "Complain about a decision",
        "Who to contact",
    ):
        await expect(page.get_by_role("heading", level=2, name=_(section))).to_be_visible()

    # an empty complaint is explained by its text box, which points to the explanation
    await submit(page, _("Send the complaint"), expected_status=422)
    box = page.get_by_role("textbox", name=_("What was decided, and why do you disagree?"))
    await expect(box).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#complaint-error")).to_be_visible()
    assert await _overflow(page) <= 0
    await box.fill("Please explain why the progress reports were shared.")
    await submit(page, _("Send the complaint"))
    await expect(heading).to_have_text(_("We have received your complaint"))
    await expect(page.locator("p.notice")).to_be_visible()

    await page.goto(rights_url)
    await submit(page, _("Email me a copy"))
    await expect(heading).to_have_text(_("We have sent you a copy of your data"))
    mailbox.clear()
    assert await live_worker.deliver_due() >= 1
    [copy] = mailbox.to(GUARDIAN)
    assert b"data-copy.json" in copy.raw

    kinds = await db.fetch("select kind, status from data_requests order by created_at")
    assert [(r["kind"], r["status"]) for r in kinds] == [("complaint", "open"), ("access", "done")]
