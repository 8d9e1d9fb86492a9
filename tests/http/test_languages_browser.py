"""The request email and the review page in each shipped language, in a real Chromium: every
message is in the requested language, and a page without a request follows the browser's
Accept-Language."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING

import httpx
import pytest

from service.consent.purposes import load_catalogue
from service.dev.mailcatcher import Mailbox
from service.i18n import DEFAULT_LOCALE, LOCALES, translator
from service.settings import Settings
from service.worker import Worker
from tests.support.browser import browser_test_marks, phone_context
from tests.support.guardian_client import guardian_link
from tests.support.untranslated import english_only_texts, english_purpose_texts, readable

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = browser_test_marks()

GUARDIAN = "multilingual.parent@example.com"
CATALOGUE = load_catalogue(None)
TRANSLATED = [locale for locale in LOCALES if locale != DEFAULT_LOCALE]


def leftovers(locale: str, renderings: Iterator[str], operator: str) -> list[tuple[str, str]]:
    """Each English message (or English purpose text) found in a rendering in ``locale``."""
    if locale == DEFAULT_LOCALE:
        return []
    english = english_only_texts(locale) | english_purpose_texts(CATALOGUE, locale)
    assert english
    return [
        (source, text[:80])
        for text in (readable(document, names=(operator,)) for document in renderings)
        for source in sorted(english)
        if source in text
    ]


def test_the_eight_languages_of_the_issue_are_shipped() -> None:
    assert set(LOCALES) >= {"en", "sl", "de", "hr", "it", "hu", "fr", "es"}


@pytest.mark.parametrize("locale", LOCALES)
async def test_the_request_email_and_review_page_are_in_the_requested_language(
    live_api: httpx.AsyncClient,
    live_worker: Worker,
    mailbox: Mailbox,
    browser: Browser,
    live_settings: Settings,
    locale: str,
) -> None:
    from playwright.async_api import expect

    language = translator(locale)
    created = await live_api.post(
        "/v1/consent-requests",
        json={
            "subject_id": f"child-{locale}",
            "birth_date": date(date.today().year - 10, 4, 1).isoformat(),
            "country": "US",  # every purpose on the page, the disclosure one with its reason
            "guardian_email": GUARDIAN,
            "purposes": CATALOGUE.ids,
            "locale": locale,
        },
    )
    assert created.status_code == 201, created.text
    mailbox.clear()
    assert await live_worker.deliver_due() == 1
    [email] = mailbox.to(GUARDIAN)
    subject = language.gettext(
        "%(operator)s: your consent is needed for your child's account",
        operator=live_settings.operator_name,
    )
    assert readable(email.subject) == readable(subject)  # a header folds a no-break space
    operator = live_settings.operator_name
    assert leftovers(locale, iter((email.subject, email.text, email.html)), operator) == []
    for purpose in CATALOGUE.purposes:
        assert purpose.localized_title(locale) in email.text

    async with phone_context(browser) as context:  # no Accept-Language: the request decides
        page = await context.new_page()
        response = await page.goto(guardian_link(email.text), wait_until="load")
        assert response is not None
        assert response.status == 200
        assert await page.locator("html").get_attribute("lang") == locale
        await expect(
            page.get_by_role("button", name=language.gettext("Give consent"))
        ).to_be_visible()
        shown = [await page.title(), await page.locator("body").inner_text()]
        for purpose in CATALOGUE.purposes:
            await expect(
                page.get_by_role("checkbox", name=purpose.localized_title(locale))
            ).to_be_attached()
    assert leftovers(locale, iter(shown), operator) == []


@pytest.mark.parametrize("locale", TRANSLATED)
async def test_a_page_without_a_request_follows_the_browsers_language(
    server: str, browser: Browser, live_settings: Settings, locale: str
) -> None:
    heading = translator(locale).gettext("This link is not valid")
    async with phone_context(browser, locale=f"{locale}-{locale.upper()}") as context:
        page = await context.new_page()
        response = await page.goto(f"{server}/guardian/no-such-link", wait_until="load")
        assert response is not None
        assert response.status == 404
        assert await page.locator("html").get_attribute("lang") == locale
        assert heading in await page.locator("h1").inner_text()
        shown = [await page.title(), await page.locator("body").inner_text()]
    assert leftovers(locale, iter(shown), live_settings.operator_name) == []
