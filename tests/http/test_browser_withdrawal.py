"""The guardian's choices in a real Chromium against a real server, in English and Slovenian.

Per-purpose withdrawal: the guardian ticks only the newsletter; the check then allows tutoring
and not the newsletter, and the re-issued token (verified against the JWKS) lists what remains.
The review page's two buttons look different (filled and outlined), a form error sits by its
field, and honest mistakes never lock the link: five of them, then a valid grant succeeds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import TYPE_CHECKING, Any

import httpx
import jwt
import pytest

from service.dev.mailcatcher import Mailbox
from service.settings import Settings
from service.worker import Worker
from tests.support import browser as support
from tests.support.browser import browser_test_marks, phone_context, submit

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = browser_test_marks()

GUARDIAN = "browser.partial@example.com"
SUBJECT = "child-browser-partial"
TEXTS = {
    "en": {
        "browser_locale": "en-GB",
        "attestation": "I am the parent or legal guardian",
        "give": "Give consent",
        "refuse": "Refuse consent",
        "thanks": "Thank you, your consent has been recorded",
        "progress": "Progress reports",
        "newsletter": "Newsletter",
        "withdraw_heading": "Withdraw your consent",
        "withdraw_button": "Withdraw consent",
        "partial_heading": "Part of your consent has been withdrawn",
        "remaining": ["Tutoring", "Progress reports"],
        "attestation_error": "Please confirm that you are the child's parent or legal guardian.",
    },
    "sl": {
        "browser_locale": "sl-SI",
        "attestation": "Sem starš ali zakoniti skrbnik tega otroka",
        "give": "Dajem soglasje",
        "refuse": "Zavračam soglasje",
        "thanks": "Hvala, vaše soglasje je zabeleženo",
        "progress": "Poročila o napredku",
        "newsletter": "E-novice",
        "withdraw_heading": "Preklic soglasja",
        "withdraw_button": "Preklicujem soglasje",
        "partial_heading": "Del vašega soglasja je preklican",
        "remaining": ["Inštrukcije", "Poročila o napredku"],
        "attestation_error": "Potrdite, da ste otrokov starš ali zakoniti skrbnik.",
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


async def emailed_link(worker: Worker, mailbox: Mailbox) -> str:
    return await support.emailed_link(worker, mailbox, GUARDIAN, exactly_one=False)


async def open_review_page(
    api: httpx.AsyncClient, worker: Worker, mailbox: Mailbox, page: Page, locale: str
) -> None:
    created = await api.post(
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
    review = await page.goto(await emailed_link(worker, mailbox))
    assert review is not None
    assert review.status == 200


async def check(api: httpx.AsyncClient, purpose: str) -> dict[str, Any]:
    return await support.check(api, SUBJECT, purpose)


async def style(page: Page, button: str) -> dict[str, str]:
    found: dict[str, str] = await page.get_by_role("button", name=button, exact=True).evaluate(
        """element => {
            const s = getComputedStyle(element);
            return {background: s.backgroundColor, border: s.borderTopColor, color: s.color};
        }"""
    )
    return found


async def test_withdrawing_only_the_newsletter_in_a_browser(
    live_api: httpx.AsyncClient,
    live_worker: Worker,
    live_settings: Settings,
    mailbox: Mailbox,
    page: Page,
    server: str,
    locale: str,
) -> None:
    from playwright.async_api import expect

    texts = TEXTS[locale]
    await open_review_page(live_api, live_worker, mailbox, page, locale)

    # "Give consent" and "Refuse consent" look alike: neither choice is the lesser one.
    give, refuse = await style(page, texts["give"]), await style(page, texts["refuse"])
    assert give == refuse

    # A missing attestation is explained right by its checkbox.
    await page.get_by_role("checkbox", name=texts["newsletter"]).check()
    await page.get_by_role("checkbox", name=texts["progress"]).check()
    await submit(page, texts["give"], expected_status=422)
    attestation = page.get_by_label(texts["attestation"], exact=False)
    await expect(attestation).to_have_attribute("aria-describedby", "attestation-error")
    await expect(attestation).to_have_attribute("aria-invalid", "true")
    error = page.locator("#attestation-error")
    await expect(error).to_have_text(texts["attestation_error"])
    await expect(error).to_be_visible()
    fieldset = page.locator("fieldset.attestation")
    await expect(fieldset.locator("#attestation-error")).to_have_count(1)

    await attestation.check()
    await submit(page, texts["give"])
    await expect(page.get_by_role("heading", level=1)).to_have_text(texts["thanks"])

    withdraw_link = await emailed_link(live_worker, mailbox)
    assert "/guardian/withdraw/" in withdraw_link
    opened = await page.goto(withdraw_link)
    assert opened is not None
    assert opened.status == 200
    await expect(page.get_by_role("heading", level=1)).to_have_text(texts["withdraw_heading"])
    for box in await page.locator("form.withdraw-form input[name=purposes]").all():
        await expect(box).not_to_be_checked()
    await page.get_by_role("checkbox", name=texts["newsletter"]).check()
    await submit(page, texts["withdraw_button"])
    await expect(page.get_by_role("heading", level=1)).to_have_text(texts["partial_heading"])
    await expect(page.locator("ul.remaining").get_by_role("listitem")).to_have_text(
        texts["remaining"]
    )

    tutoring = await check(live_api, "tutoring")
    assert (tutoring["allowed"], tutoring["status"]) == (True, "granted")
    assert (await check(live_api, "progress_reports"))["allowed"] is True
    newsletter = await check(live_api, "newsletter")
    assert newsletter["allowed"] is False

    jwks = (await live_api.get("/.well-known/jwks.json")).json()
    token = tutoring["token"]
    key = next(k for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(token)["kid"])
    claims = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["EdDSA"],
        audience=live_settings.token_audience,
        issuer=live_settings.token_issuer,
    )
    assert claims["purposes"] == ["tutoring", "progress_reports"]
    assert claims["jti"] == tutoring["consent_id"]


async def test_five_honest_mistakes_then_a_valid_grant(
    live_api: httpx.AsyncClient, live_worker: Worker, mailbox: Mailbox, page: Page, locale: str
) -> None:
    from playwright.async_api import expect

    texts = TEXTS[locale]
    await open_review_page(live_api, live_worker, mailbox, page, locale)

    # First view: only the required purpose is ticked; optional ones and the attestation not.
    await expect(page.get_by_role("checkbox", name=texts["progress"])).not_to_be_checked()
    await expect(page.get_by_role("checkbox", name=texts["newsletter"])).not_to_be_checked()
    attestation = page.get_by_label(texts["attestation"], exact=False)
    await expect(attestation).not_to_be_checked()

    await page.get_by_role("checkbox", name=texts["newsletter"]).check()
    for _ in range(5):
        await submit(page, texts["give"], expected_status=422)
        await expect(page.locator("#attestation-error")).to_have_text(texts["attestation_error"])
        body = await page.inner_text("body")
        assert "error." not in body
        # The re-shown form keeps exactly what was ticked.
        await expect(page.get_by_role("checkbox", name=texts["newsletter"])).to_be_checked()
        await expect(page.get_by_role("checkbox", name=texts["progress"])).not_to_be_checked()
    assert (await check(live_api, "tutoring"))["status"] == "pending"

    await attestation.check()
    await submit(page, texts["give"])
    await expect(page.get_by_role("heading", level=1)).to_have_text(texts["thanks"])
    assert (await check(live_api, "tutoring"))["allowed"] is True
    assert (await check(live_api, "newsletter"))["allowed"] is True
    assert (await check(live_api, "progress_reports"))["allowed"] is False
