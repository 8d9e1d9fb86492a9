"""A US guardian's review page in a real Chromium: the disclosure purpose is there, with its
recipients, but its checkbox is disabled and says why, in English and in Slovenian; giving
consent with everything the page allows leaves it not granted."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from service.app import create_app
from service.clock import SystemClock
from service.dev.mailcatcher import Mailbox
from service.dev.pgcluster import free_port
from service.i18n import translator
from service.settings import Settings, load_settings
from service.worker import Worker
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, browser_unavailable, live_server
from tests.support.credentials import make_api_key
from tests.support.guardian_client import guardian_link
from tests.support.service import worker_for

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

UNAVAILABLE = browser_unavailable()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or ""),
]

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
    async with live_server(create_app(live_settings, clock=SystemClock()), port) as base_url:
        yield base_url


@pytest.fixture
async def live_worker(live_settings: Settings) -> AsyncIterator[Worker]:
    async with worker_for(live_settings, SystemClock(), max_size=2) as worker:
        yield worker


@pytest.fixture
async def api(server: str, db: asyncpg.Connection) -> AsyncIterator[httpx.AsyncClient]:
    key = await make_api_key(db, "consent:request", "consent:check")
    async with httpx.AsyncClient(
        base_url=server, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
    ) as client:
        yield client


@pytest.fixture
async def page(browser: Browser, server: str) -> AsyncIterator[Page]:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(10_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


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
    mailbox.clear()
    assert await worker.deliver_due() == 1
    [message] = mailbox.to(GUARDIAN)
    return guardian_link(message.text)


async def check(api: httpx.AsyncClient, subject_id: str, purpose: str) -> dict[str, Any]:
    response = await api.get(
        "/v1/consents/check", params={"subject_id": subject_id, "purpose": purpose}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("locale", ["en", "sl"])
async def test_the_disclosure_checkbox_is_disabled_and_explained(
    api: httpx.AsyncClient,
    live_worker: Worker,
    mailbox: Mailbox,
    page: Page,
    locale: str,
) -> None:
    from playwright.async_api import expect

    texts = TEXTS[locale]
    link = await emailed_review_link(
        api, live_worker, mailbox, subject_id=f"child-us-{locale}", locale=locale
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
    api: httpx.AsyncClient, live_worker: Worker, mailbox: Mailbox, page: Page
) -> None:
    from playwright.async_api import expect

    texts = TEXTS["en"]
    subject = "child-us-grant"
    link = await emailed_review_link(api, live_worker, mailbox, subject_id=subject, locale="en")
    await page.goto(link, wait_until="load")
    for checkbox in await page.locator('input[name="purposes"]:not([disabled])').all():
        await checkbox.check()
    await page.get_by_label(texts["attestation"], exact=False).check()
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.get_by_role("button", name=texts["give"], exact=True).click()
    assert (await answer.value).status == 200
    await expect(page.get_by_role("heading", level=1)).to_have_text(texts["thanks"])

    assert (await check(api, subject, "progress_reports"))["allowed"] is True
    disclosure = await check(api, subject, "research_sharing")
    assert (disclosure["status"], disclosure["allowed"]) == ("granted", False)
