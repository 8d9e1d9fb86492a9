"""Every guardian page passes axe-core's WCAG 2.2 A/AA rules without a serious or critical
violation, at phone (390 px) and desktop (1280 px) width, in a real Chromium against a real
server: review, review with errors, both result pages, withdraw (and with an error), withdrawn,
the link problems, the too-many-attempts page, an error page and the retention policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import TYPE_CHECKING

import httpx
import pytest

from service.dev.mailcatcher import Mailbox
from service.http.guardian import SUBMISSIONS_PER_MINUTE
from service.security.tokens import new_link_token
from service.worker import Worker
from tests.support import browser as support
from tests.support.axe import assert_no_serious_violations, axe_test_marks, serious_violations
from tests.support.browser import browser_test_marks, submit
from tests.support.guardian_client import review_csrf

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [*browser_test_marks(), *axe_test_marks()]

WIDTHS = {"phone": (390, 844), "desktop": (1280, 900)}


@pytest.fixture(params=list(WIDTHS))
async def page(
    browser: Browser, server: str, request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    width, height = WIDTHS[str(request.param)]
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
    context.set_default_timeout(10_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def open_review(
    api: httpx.AsyncClient,
    worker: Worker,
    mailbox: Mailbox,
    page: Page,
    guardian: str,
    subject: str,
) -> str:
    created = await api.post(
        "/v1/consent-requests",
        json={
            "subject_id": subject,
            "birth_date": date(date.today().year - 10, 4, 1).isoformat(),
            "country": "SI",
            "guardian_email": guardian,
            "purposes": ["tutoring", "progress_reports", "newsletter"],
            "child_hint": "mia_2016",
        },
    )
    assert created.status_code == 201, created.text
    link = await support.emailed_link(worker, mailbox, guardian, exactly_one=False)
    opened = await page.goto(link)
    assert opened is not None
    assert opened.status == 200
    return link


async def test_every_guardian_page_state_passes_axe(
    live_api: httpx.AsyncClient, live_worker: Worker, mailbox: Mailbox, page: Page, server: str
) -> None:
    guardian = "axe.parent@example.com"
    link = await open_review(live_api, live_worker, mailbox, page, guardian, "child-axe")
    await assert_no_serious_violations(page, "review")

    await submit(page, "Give consent", expected_status=422)
    await assert_no_serious_violations(page, "review with errors")

    await page.get_by_label("I am the parent or legal guardian", exact=False).check()
    await submit(page, "Give consent")
    await assert_no_serious_violations(page, "result: granted")

    withdraw_link = await support.emailed_link(live_worker, mailbox, guardian, exactly_one=False)
    assert "/guardian/withdraw/" in withdraw_link
    await page.goto(withdraw_link)
    await assert_no_serious_violations(page, "withdraw")
    # the consent's only purpose comes ticked; unticked, the page explains what is missing
    await page.get_by_role("checkbox", name="Tutoring").uncheck()
    await submit(page, "Withdraw consent", expected_status=422)
    await assert_no_serious_violations(page, "withdraw with errors")
    await page.get_by_role("checkbox", name="Tutoring").check()
    await submit(page, "Withdraw consent")
    await assert_no_serious_violations(page, "withdrawn")

    used = await page.goto(link)
    assert used is not None
    assert used.status == 410
    await assert_no_serious_violations(page, "link problem: used")
    unknown = await page.goto(f"{server}/guardian/{new_link_token()}")
    assert unknown is not None
    assert unknown.status == 404
    await assert_no_serious_violations(page, "link problem: unknown")

    await open_review(live_api, live_worker, mailbox, page, "axe.refuser@example.com", "child-no")
    await submit(page, "Refuse consent")
    await assert_no_serious_violations(page, "result: refused")

    await page.goto(f"{server}/privacy/retention")
    await assert_no_serious_violations(page, "retention policy")


async def test_the_error_and_too_many_attempts_pages_pass_axe(
    live_api: httpx.AsyncClient, live_worker: Worker, mailbox: Mailbox, page: Page, server: str
) -> None:
    # Pages only a refused POST gets: fetched as the browser would get them, then shown from
    # the server's origin so their stylesheet loads as it would.
    link = await open_review(live_api, live_worker, mailbox, page, "axe.busy@example.com", "c-b")
    async with httpx.AsyncClient(base_url=server, headers={"Accept-Language": "en"}) as client:
        expired_form = await client.post(f"/guardian/{new_link_token()}", data={"decision": "deny"})
        assert expired_form.status_code == 403
        form = {"decision": "deny", "_csrf_token": await review_csrf(client, link)}
        for _ in range(SUBMISSIONS_PER_MINUTE + 1):
            limited = await client.post(f"/guardian/{new_link_token()}", data=form)
            if limited.status_code == 429:
                break
        assert limited.status_code == 429
    for what, answer in (("error page", expired_form), ("too many attempts", limited)):
        await page.goto(f"{server}/healthz")
        await page.set_content(answer.text)
        await page.wait_for_load_state("load")
        await assert_no_serious_violations(page, what)


async def test_a_violation_is_found_and_described(page: Page, server: str) -> None:
    await page.goto(f"{server}/healthz")
    await page.set_content(
        '<!DOCTYPE html><html><body><img src="/static/favicon.svg"></body></html>'
    )
    violations = await serious_violations(page)
    assert {v["id"] for v in violations} >= {"image-alt", "html-has-lang"}
    with pytest.raises(AssertionError, match="image-alt"):
        await assert_no_serious_violations(page)
