"""Every console page, rendered in every shipped language, is fully translated: no English
message of the console left on a Slovenian page, no placeholder left unfilled."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from service.i18n import LOCALES
from service.settings import Settings
from tests.support.console import (
    PLACEHOLDER_LEFT,
    callback_url,
    console_messages,
    console_test_marks,
    console_with_a_request,
    csrf_token,
    sign_in,
)
from tests.support.rendering import esc

pytestmark = console_test_marks()

GUARDIAN = "father.texts@example.com"
SUBJECT = "child-texts-3"


@pytest.fixture
async def console(
    settings_for_console: Settings, console_port: int, db: asyncpg.Connection
) -> AsyncIterator[str]:
    async with console_with_a_request(
        settings_for_console, console_port, db, subject_id=SUBJECT, guardian=GUARDIAN
    ) as base_url:
        yield base_url


async def every_page(console: str, locale: str) -> dict[str, str]:
    """Each console page and error page as a staff member with this language sees it."""
    language = {"Accept-Language": locale}
    pages: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=10.0, headers=language) as staff:
        home = await sign_in(staff, console, "support")
        pages["home"] = home.text
        token = csrf_token(home.text)
        for name, form in (
            ("found", {"by": "guardian", "query": GUARDIAN}),
            ("none found", {"by": "subject", "query": "child-nobody"}),
            ("invalid", {"by": "guardian", "query": "x"}),
        ):
            answer = await staff.post(
                f"{console}/console/search", data={**form, "_csrf_token": token}
            )
            pages[name] = answer.text
        pages["subject"] = (await staff.get(f"{console}/console/subjects/{SUBJECT}")).text
        pages["unknown subject"] = (await staff.get(f"{console}/console/subjects/nobody")).text
        pages["form refused"] = (
            await staff.post(f"{console}/console/search", data={"by": "subject"})
        ).text
        pages["not found"] = (await staff.get(f"{console}/console/no-such-page")).text
        signed_out = await staff.post(f"{console}/console/auth/logout", data={"_csrf_token": token})
        assert signed_out.status_code == 303
        pages["signed out"] = (await staff.get(f"{console}/console/auth/signed-out")).text
    async with httpx.AsyncClient(timeout=10.0, headers=language) as nobody:
        pages["no role"] = (await sign_in(nobody, console, "nobody")).text
    async with httpx.AsyncClient(timeout=10.0, headers=language) as forger:
        url = httpx.URL(await callback_url(forger, console, "support"))
        pages["sign-in failed"] = (await forger.get(url.copy_set_param("state", "x"))).text
    return pages


@pytest.mark.parametrize("locale", LOCALES)
async def test_every_console_page_is_in_the_staff_members_language(
    console: str, locale: str
) -> None:
    messages = console_messages(locale) if locale != "en" else []
    for name, html in (await every_page(console, locale)).items():
        assert f'<html lang="{locale}">' in html, name
        assert not PLACEHOLDER_LEFT.search(html), (name, PLACEHOLDER_LEFT.search(html))
        for english, translated in messages:
            if english == translated or "%(" in english:
                continue
            # a sentence anywhere; a single word only as an element's whole text
            left = esc(english) if len(english) >= 12 else f">{esc(english)}<"
            assert left not in html, (locale, name, english)
