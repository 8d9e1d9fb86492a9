"""A US guardian's review page in a real Chromium: the disclosure purpose is there, with its
recipients, but its checkbox is disabled and says why, in English and in Slovenian; giving
consent with everything the page allows leaves it not granted."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date
from typing import TYPE_CHECKING

import httpx
import pytest

from service.dev.mailcatcher import Mailbox
from service.i18n import translator
from service.worker import Worker
from tests.support.browser import browser_test_marks, check, emailed_link, phone_context, submit

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = browser_test_marks()

GUARDIAN = "us.parent@example.com"
PURPOSES = ["tutoring", "progress_reports", "newsletter", "research_sharing"]
TEXTS = {
    "en": {
        "title": "Sharing progress with education researchers",
        "recipient": "University education research groups",
        "give": "Give consent",
        "attestation": "I am the parent or legal guardian",
        "thanks": "Thank you, your consent has been recorded",
    },
    "sl": {
        "title": "Deljenje napredka z raziskovalci izobraževanja",
        "recipient": "Univerzitetne raziskovalne skupine na področju izobraževanja",
    },
}
NOT_AVAILABLE = (
    "Not available yet: sharing your child's data with others needs a stronger way of checking "
    "that you are the parent than email, and this service does not offer one yet. You can "
    "still give consent to the other purposes."
)


@pytest.fixture
async def page(browser: Browser, server: str) -> AsyncIterator[Page]:
    async with phone_context(browser) as context:
        yield await context.new_page()


async def emailed_review_link(
    api: httpx.AsyncClient, worker: Worker, mailbox: Mailbox, *, subject_id: str, locale: str
) -> str:
    created = await api.post(
        "/v1/consent-requests",
        json={
            "subject_id": subject_id,
            "birth_date": date(date.today().year - 10, 4, 1).isoformat(),
            "country": "US",
            "guardian_email": GUARDIAN,
            "purposes": PURPOSES,
            "locale": locale,
        },
    )
    assert created.status_code == 201, created.text
    return await emailed_link(worker, mailbox, GUARDIAN)


@pytest.mark.parametrize("locale", ["en", "sl"])
async def test_the_disclosure_checkbox_is_disabled_and_explained(
    live_api: httpx.AsyncClient,
    live_worker: Worker,
    mailbox: Mailbox,
    page: Page,
    locale: str,
) -> None:
    from playwright.async_api import expect

    texts = TEXTS[locale]
    link = await emailed_review_link(
        live_api, live_worker, mailbox, subject_id=f"child-us-{locale}", locale=locale
    )
    response = await page.goto(link, wait_until="load")
    assert response is not None
    assert response.status == 200

    box = page.get_by_role("checkbox", name=texts["title"])
    await expect(box).to_be_visible()
    await expect(box).to_be_disabled()
    await expect(box).not_to_be_checked()
    explanation = translator(locale).gettext(NOT_AVAILABLE)
    await expect(page.get_by_text(explanation)).to_be_visible()
    # the explanation comes first in the checkbox's description, for screen readers too
    await expect(box).to_have_accessible_description(re.compile("^" + re.escape(explanation)))
    await expect(page.locator(".recipients")).to_contain_text(texts["recipient"])
    enabled = await page.locator('input[name="purposes"]:not([disabled])').count()
    assert enabled == 3


async def test_giving_consent_with_everything_the_page_allows_leaves_it_out(
    live_api: httpx.AsyncClient, live_worker: Worker, mailbox: Mailbox, page: Page
) -> None:
    from playwright.async_api import expect

    texts = TEXTS["en"]
    subject = "child-us-grant"
    link = await emailed_review_link(
        live_api, live_worker, mailbox, subject_id=subject, locale="en"
    )
    await page.goto(link, wait_until="load")
    for checkbox in await page.locator('input[name="purposes"]:not([disabled])').all():
        await checkbox.check()
    await page.get_by_label(texts["attestation"], exact=False).check()
    await submit(page, texts["give"])
    await expect(page.get_by_role("heading", level=1)).to_have_text(texts["thanks"])

    assert (await check(live_api, subject, "progress_reports"))["allowed"] is True
    disclosure = await check(live_api, subject, "research_sharing")
    assert (disclosure["status"], disclosure["allowed"]) == ("granted", False)
