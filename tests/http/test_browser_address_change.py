"""A guardian changes their address in a real Chromium on a 390 px phone, in English and
Slovenian: from the withdrawal page to the form, a mistake explained by its field, the link sent
to the new address, the confirmation page and its button. Every page fits the screen; the
consent keeps its id and the old address is told."""

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
from tests.support.browser import browser_test_marks, phone_context, submit

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = browser_test_marks()

OLD = "browser.old.parent@example.com"
NEW = "browser.new.parent@example.org"
SUBJECT = "child-browser-address"
CONFIRM_LINK = re.compile(r"https?://[^\s<>\"]+/guardian/address/confirm/[A-Za-z0-9_-]+")
TEXTS = {
    "en": {
        "browser_locale": "en-GB",
        "attestation": "I am the parent or legal guardian",
        "give": "Give consent",
        "change_link": "Change your email address",
        "form_heading": "Change your email address",
        "label": "New email address",
        "send": "Send confirmation link",
        "invalid": (
            "Please enter one email address, such as name@example.com, without spaces or a "
            "name around it."
        ),
        "sent_heading": "Check your new address",
        "confirm_heading": "Confirm your new email address",
        "confirm": "Confirm new address",
        "changed_heading": "Your email address has been changed",
        "notice_subject": "Učilnica Tutoring: your email address has been changed",
    },
    "sl": {
        "browser_locale": "sl-SI",
        "attestation": "Sem starš ali zakoniti skrbnik tega otroka",
        "give": "Dajem soglasje",
        "change_link": "Spremenite svoj e-poštni naslov",
        "form_heading": "Spremenite svoj e-poštni naslov",
        "label": "Novi e-poštni naslov",
        "send": "Pošljite povezavo za potrditev",
        "invalid": (
            "Vnesite en e-poštni naslov, na primer ime@primer.si, brez presledkov in brez "
            "imena pred njim ali za njim."
        ),
        "sent_heading": "Preverite svoj novi naslov",
        "confirm_heading": "Potrdite svoj novi e-poštni naslov",
        "confirm": "Potrdi novi naslov",
        "changed_heading": "Vaš e-poštni naslov je bil spremenjen",
        "notice_subject": "Učilnica Tutoring: vaš e-poštni naslov je bil spremenjen",
    },
}


@pytest.fixture(params=["en", "sl"])
def locale(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def page(browser: Browser, server: str, locale: str) -> AsyncIterator[Page]:
    # Depends on `server` so that the browser context closes before the server stops.
    async with phone_context(browser, locale=TEXTS[locale]["browser_locale"]) as context:
        yield await context.new_page()


async def fits_the_screen(page: Page) -> None:
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the phone's screen"


async def test_changing_the_address_on_a_phone(
    live_api: httpx.AsyncClient, live_worker: Worker, mailbox: Mailbox, page: Page, locale: str
) -> None:
    from playwright.async_api import expect

    texts = TEXTS[locale]
    created = await live_api.post(
        "/v1/consent-requests",
        json={
            "subject_id": SUBJECT,
            "birth_date": date(date.today().year - 10, 4, 1).isoformat(),
            "country": "SI",
            "guardian_email": OLD,
            "purposes": ["tutoring"],
            "locale": locale,
        },
    )
    assert created.status_code == 201, created.text
    review = await page.goto(await support.emailed_link(live_worker, mailbox, OLD))
    assert review is not None
    await page.get_by_label(texts["attestation"], exact=False).check()
    await submit(page, texts["give"])
    granted = await support.check(live_api, SUBJECT, "tutoring")
    assert granted["status"] == "granted"

    withdraw_link = await support.emailed_link(live_worker, mailbox, OLD)
    await page.goto(withdraw_link)
    await page.get_by_role("link", name=texts["change_link"]).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(texts["form_heading"])
    await fits_the_screen(page)

    field = page.get_by_label(texts["label"], exact=True)
    await field.fill("Parent <someone@example.org>")
    await submit(page, texts["send"], expected_status=422)
    field = page.get_by_label(texts["label"], exact=True)
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(field).to_have_attribute("aria-describedby", "email-help email-error")
    await expect(page.locator("#email-error")).to_have_text(texts["invalid"])
    await fits_the_screen(page)
    width = await field.evaluate("element => element.getBoundingClientRect().width")
    assert width >= 300, "the address field should use the phone's width"

    await field.fill(NEW)
    await submit(page, texts["send"])
    await expect(page.get_by_role("heading", level=1)).to_have_text(texts["sent_heading"])
    await fits_the_screen(page)

    mailbox.clear()
    assert await live_worker.deliver_due() == 1
    [confirmation] = mailbox.to(NEW)
    match = CONFIRM_LINK.search(confirmation.text)
    assert match, confirmation.text
    opened = await page.goto(match.group(0))
    assert opened is not None
    assert opened.status == 200
    await expect(page.get_by_role("heading", level=1)).to_have_text(texts["confirm_heading"])
    await fits_the_screen(page)
    await submit(page, texts["confirm"])
    await expect(page.get_by_role("heading", level=1)).to_have_text(texts["changed_heading"])
    await fits_the_screen(page)

    after = await support.check(live_api, SUBJECT, "tutoring")
    assert (after["status"], after["consent_id"]) == ("granted", granted["consent_id"])
    assert await live_worker.deliver_due() == 1
    [notice] = mailbox.to(OLD)
    assert notice.subject == texts["notice_subject"]
