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

import asyncpg
import httpx
import jwt
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
    from playwright.async_api import Browser, Page

UNAVAILABLE = browser_unavailable()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or ""),
]

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


@pytest.fixture(params=["en", "sl"])
def locale(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def page(browser: Browser, server: str, locale: str) -> AsyncIterator[Page]:
    # Depends on `server` so that the browser context closes before the server stops.
    context = await browser.new_context(
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        locale=TEXTS[locale]["browser_locale"],
    )
    context.set_default_timeout(10_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def emailed_link(worker: Worker, mailbox: Mailbox) -> str:
    mailbox.clear()
    assert await worker.deliver_due() >= 1
    [message] = mailbox.to(GUARDIAN)
    return guardian_link(message.text)


async def check(api: httpx.AsyncClient, purpose: str) -> dict[str, Any]:
    response = await api.get(
        "/v1/consents/check", params={"subject_id": SUBJECT, "purpose": purpose}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def submit(page: Page, button: str, expected_status: int = 200) -> None:
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.get_by_role("button", name=button, exact=True).click()
    response = await answer.value
    assert response.status == expected_status, await response.text()
    await page.wait_for_load_state("load")


async def style(page: Page, button: str) -> dict[str, str]:
    found: dict[str, str] = await page.get_by_role("button", name=button, exact=True).evaluate(
        """element => {
            const s = getComputedStyle(element);
            return {background: s.backgroundColor, border: s.borderTopColor, color: s.color};
        }"""
    )
    return found


async def test_withdrawing_only_the_newsletter_in_a_browser(
    api: httpx.AsyncClient,
    live_worker: Worker,
    live_settings: Settings,
    mailbox: Mailbox,
    page: Page,
    server: str,
    locale: str,
) -> None:
    from playwright.async_api import expect

    texts = TEXTS[locale]
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
    review = await page.goto(await emailed_link(live_worker, mailbox))
    assert review is not None
    assert review.status == 200

    # "Give consent" is filled, "Refuse consent" outlined: different without reading them.
    give, refuse = await style(page, texts["give"]), await style(page, texts["refuse"])
    assert give["background"] != refuse["background"]
    assert give["background"] == refuse["border"] == give["border"]  # the accent colour
    assert refuse["color"] == give["background"]

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

    tutoring = await check(api, "tutoring")
    assert (tutoring["allowed"], tutoring["status"]) == (True, "granted")
    assert (await check(api, "progress_reports"))["allowed"] is True
    newsletter = await check(api, "newsletter")
    assert newsletter["allowed"] is False

    jwks = (await api.get("/.well-known/jwks.json")).json()
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
    api: httpx.AsyncClient, live_worker: Worker, mailbox: Mailbox, page: Page, locale: str
) -> None:
    from playwright.async_api import expect

    texts = TEXTS[locale]
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
    review = await page.goto(await emailed_link(live_worker, mailbox))
    assert review is not None
    assert review.status == 200

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
    assert (await check(api, "tutoring"))["status"] == "pending"

    await attestation.check()
    await submit(page, texts["give"])
    await expect(page.get_by_role("heading", level=1)).to_have_text(texts["thanks"])
    assert (await check(api, "tutoring"))["allowed"] is True
    assert (await check(api, "newsletter"))["allowed"] is True
    assert (await check(api, "progress_reports"))["allowed"] is False
