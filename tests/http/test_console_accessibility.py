"""axe-core finds no serious or critical WCAG 2.2 A/AA violation on any console page, at
1280 px and at 390 px, in the states staff meet: with data, empty, after an action, on error.

``PAGES`` lists every page and how a browser reaches it; a new console page adds a row there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.clock import ManualClock
from service.dev.pgcluster import free_port
from service.settings import Settings, load_settings
from tests.support.axe import assert_no_serious_violations, axe_test_marks
from tests.support.browser import PHONE_HEIGHT, PHONE_WIDTH, browser_test_marks, live_server
from tests.support.console import console_test_marks
from tests.support.credentials import make_api_key
from tests.support.flows import create_request
from tests.support.service import worker_for

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [*browser_test_marks(), *axe_test_marks(), *console_test_marks()]

GUARDIAN = "axe.console@example.com"
SUBJECT = "child-axe-console"
DEAD_SUBJECT = "child-axe-dead"
USER_BUTTONS = {"support": "Sam Support (support)", "admin": "Ada Admin (support, admin)"}
WIDTHS = ((1280, 900), (PHONE_WIDTH, PHONE_HEIGHT))


async def _search(page: Page, console: str, by: str, query: str) -> None:
    await page.goto(f"{console}/console")
    choice = "Guardian email address" if by == "guardian" else "Subject id"
    await page.get_by_role("radio", name=choice).check()
    await page.get_by_label("Subject id or email address").fill(query)
    await page.get_by_role("button", name="Search", exact=True).click()
    await page.wait_for_load_state()


async def _create_key(page: Page, console: str) -> None:
    await page.goto(f"{console}/console/admin/keys")
    await page.get_by_label("Name").fill("axe key")
    await page.get_by_label("consent:check").check()
    await page.get_by_role("button", name="Create the key").click()
    await page.get_by_role("heading", name="API key created").wait_for()


async def _refused_key(page: Page, console: str) -> None:
    await page.goto(f"{console}/console/admin/keys")
    await page.get_by_label("Name").fill("no scope")
    await page.get_by_role("button", name="Create the key").click()
    await page.get_by_role("heading", name="Nothing was changed").wait_for()


async def _revoke_confirmation(page: Page, console: str) -> None:
    await page.goto(f"{console}/console/admin/keys")
    await page.get_by_role("link", name="Revoke “signup”…").click()
    await page.get_by_role("heading", name="Revoke the API key “signup”").wait_for()


async def _verified(page: Page, console: str) -> None:
    await page.goto(f"{console}/console/admin/audit")
    await page.get_by_role("button", name="Verify the chain now").click()
    await page.get_by_role("heading", name="The chain is intact").wait_for()


async def _retried(page: Page, console: str) -> None:
    await page.goto(f"{console}/console/admin/outbox")
    await page.get_by_role("button", name="Send again").first.click()
    await page.get_by_role("status").wait_for()


async def _cancel_confirmation(page: Page, console: str) -> None:
    await page.goto(f"{console}/console/subjects/{SUBJECT}")
    await page.get_by_role("link", name="Cancel this request…").click()
    await page.get_by_role("button", name="Cancel the request").wait_for()


async def _refused_resend(page: Page, console: str) -> None:
    """A resend from a case page opened before another tab resent: the readable "nothing was
    changed" page (429), since one reminder per hour is the limit."""
    await page.goto(f"{console}/console/subjects/{SUBJECT}")
    other = await page.context.new_page()
    try:
        await other.goto(f"{console}/console/subjects/{SUBJECT}")
        await other.get_by_role("button", name="Resend the request email").click()
        await other.get_by_role("status").wait_for()
    finally:
        await other.close()
    await page.get_by_role("button", name="Resend the request email").click()
    await page.wait_for_load_state()


async def _birth_date_confirmation(page: Page, console: str) -> None:
    await page.goto(f"{console}/console/subjects/{SUBJECT}")
    await page.get_by_label("Birth date", exact=True).fill("2014-05-30")
    await page.get_by_role("button", name="Correct the birth date…").click()
    await page.get_by_role("heading", name="Correct the birth date?").wait_for()


async def _erased(page: Page, console: str) -> None:
    await page.goto(f"{console}/console/subjects/child-axe-erased/erase")
    await page.get_by_label("The guardian asked for erasure (Art. 17)").check()
    await page.get_by_label("Type the subject id child-axe-erased to confirm").fill(
        "child-axe-erased"
    )
    await page.get_by_role("button", name="Erase for good").click()
    await page.get_by_role("heading", name="Erased").wait_for()


@dataclass(frozen=True)
class ConsolePage:
    name: str
    user: str | None  # "support", "admin", or None: no session
    path: str | None = None  # opened directly
    reach: Callable[[Page, str], Awaitable[None]] | None = None  # or reached by using the UI


PAGES = (
    ConsolePage("home", "support", "/console"),
    ConsolePage(
        "search results", "support", reach=lambda p, c: _search(p, c, "guardian", GUARDIAN)
    ),
    ConsolePage("nothing found", "support", reach=lambda p, c: _search(p, c, "subject", "nobody")),
    ConsolePage("invalid search", "support", reach=lambda p, c: _search(p, c, "guardian", "x")),
    ConsolePage("subject with data", "support", f"/console/subjects/{SUBJECT}"),
    ConsolePage("unknown subject", "support", "/console/subjects/child-unknown"),
    ConsolePage("not allowed", "support", "/console/admin/keys"),
    ConsolePage("no such page", "support", "/console/no-such-page"),
    ConsolePage("signed out", None, "/console/auth/signed-out"),
    ConsolePage("failed messages", "admin", "/console/admin/outbox"),
    ConsolePage("message sent again", "admin", reach=_retried),
    ConsolePage("API keys", "admin", "/console/admin/keys"),
    ConsolePage("key refused", "admin", reach=_refused_key),
    ConsolePage("key created", "admin", reach=_create_key),
    ConsolePage("revoke confirmation", "admin", reach=_revoke_confirmation),
    ConsolePage("audit chain", "admin", "/console/admin/audit"),
    ConsolePage("audit verified", "admin", reach=_verified),
    ConsolePage("subject as admin", "admin", f"/console/subjects/{SUBJECT}"),
    ConsolePage("cancel confirmation", "support", reach=_cancel_confirmation),
    ConsolePage("action refused", "support", reach=_refused_resend),
    ConsolePage("rights requests", "support", "/console/requests"),
    ConsolePage("rights filter refused", "support", "/console/requests?status=lost"),
    ConsolePage("birth date confirmation", "support", reach=_birth_date_confirmation),
    ConsolePage("rights requests as admin", "admin", "/console/requests"),
    ConsolePage("erasure", "admin", f"/console/subjects/{SUBJECT}/erase"),
    ConsolePage("erased", "admin", reach=_erased),
)


@pytest.fixture
async def console(
    settings_for_console: Settings,
    console_port: int,
    db: asyncpg.Connection,
    base_env: dict[str, str],
) -> AsyncIterator[str]:
    clock = ManualClock(datetime.now(UTC))
    app = create_app(settings_for_console, clock=clock)
    async with live_server(app, console_port) as base_url:
        key = await make_api_key(db, "consent:request", "consent:check")
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as api:
            # A dead email (nobody listens on the SMTP port), then a delivered one.
            await create_request(
                api,
                headers,
                subject_id=DEAD_SUBJECT,
                email="dead.axe@example.com",
                birth_date="2015-04-01",
            )
            unreachable = load_settings(
                {
                    **base_env,
                    "CONSENT_PUBLIC_URL": base_url,
                    "CONSENT_SMTP_URL": f"smtp://127.0.0.1:{free_port()}?timeout=5",
                    "CONSENT_OUTBOX_MAX_ATTEMPTS": "1",
                }
            )
            async with worker_for(unreachable, clock) as failing:
                await failing.deliver_due()
            await create_request(
                api,
                headers,
                subject_id=SUBJECT,
                email=GUARDIAN,
                birth_date="2015-04-01",
                child_hint="mia_2016",
            )
            async with worker_for(settings_for_console, clock) as working:
                assert await working.deliver_due() >= 1
        yield base_url


async def _visit(page: Page, console: str, target: ConsolePage) -> None:
    if target.reach is not None:
        await target.reach(page, console)
    else:
        assert target.path is not None
        await page.goto(f"{console}{target.path}")
    await page.wait_for_load_state()


@pytest.mark.parametrize(("width", "height"), WIDTHS, ids=("1280px", "390px"))
async def test_every_console_page_passes_axe(
    browser: Browser, console: str, width: int, height: int
) -> None:
    for user in (None, "support", "admin"):
        context = await browser.new_context(
            viewport={"width": width, "height": height}, locale="en-GB"
        )
        context.set_default_timeout(10_000)
        try:
            page = await context.new_page()
            if user is not None:
                await page.goto(f"{console}/console")
                await page.get_by_role("button", name=USER_BUTTONS[user]).click()
                await page.wait_for_url(f"{console}/console")
            for target in PAGES:
                if target.user != user:
                    continue
                await _visit(page, console, target)
                await assert_no_serious_violations(page, f"{target.name} at {width}px")
                scroll_width = await page.evaluate("document.documentElement.scrollWidth")
                assert scroll_width <= width, (target.name, width, scroll_width)
        finally:
            await context.close()


def test_every_console_template_is_on_the_list() -> None:
    """A console page template without a row in PAGES is a page axe never saw."""
    templates = Path(__file__).resolve().parents[2] / "service" / "templates" / "console"
    shown = {
        "base",
        "home",
        "subject",
        "error",
        "signed_out",
        "admin_outbox",
        "admin_keys",
        "admin_key_created",
        "admin_key_revoke",
        "admin_audit",
        "cancel_confirm",
        "action_error",
        "requests",
        "rights_problem",
        "rights_confirm",
        "erase",
        "erased",
    }
    # a granted consent's pages: test_console_actions_browser.py runs axe on each of them
    checked_with_a_consent = {"revoke", "revoke_confirm"}
    partials = {
        "admin_nav",
        "admin_messages",
        "admin_subject_extras",
        "_case_actions",
        "_revoke_fields",
        "_case_rights",
        "_rights_channel",
    }
    found = {path.stem for path in templates.glob("*.html")}
    known = shown | checked_with_a_consent | partials
    assert found <= known, f"add the new pages to PAGES: {sorted(found - known)}"
