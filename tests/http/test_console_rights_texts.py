"""The console's rights pages (queue, case forms, confirmations, refusals, erasure) in every
shipped language: no English message of the console left, no placeholder left unfilled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from service.http.console.times import console_timezone
from service.i18n import LOCALES
from service.settings import Settings
from tests.support.console import (
    PLACEHOLDER_LEFT,
    console_messages,
    console_test_marks,
    console_with_a_request,
    csrf_token,
    sign_in,
)
from tests.support.rendering import esc

pytestmark = console_test_marks()

GUARDIAN = "mother.texts@example.com"
SUBJECT = "child-rights-texts-1"


@pytest.fixture
async def console(
    settings_for_console: Settings, console_port: int, db: asyncpg.Connection
) -> AsyncIterator[str]:
    async with console_with_a_request(
        settings_for_console, console_port, db, subject_id=SUBJECT, guardian=GUARDIAN
    ) as base_url:
        yield base_url


async def rights_pages(console: str, locale: str, zone: ZoneInfo) -> dict[str, str]:
    language = {"Accept-Language": locale}
    case = f"{console}/console/subjects/{SUBJECT}"
    pages: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=10.0, headers=language) as support:
        token = csrf_token((await sign_in(support, console, "support")).text)
        late = (datetime.now(UTC) - timedelta(days=20)).astimezone(zone)
        recorded = await support.post(
            f"{case}/requests",
            data={
                "_csrf_token": token,
                "kind": "rectification",
                "channel": "staff_phone",
                "received_at": late.strftime("%Y-%m-%dT%H:%M"),
            },
        )
        assert recorded.status_code == 303
        pages["case recorded (support)"] = (
            await support.get(f"{console}{recorded.headers['location']}")
        ).text
        pages["queue"] = (await support.get(f"{console}/console/requests")).text
        pages["queue filtered"] = (
            await support.get(f"{console}/console/requests?status=done&kind=access&overdue=yes")
        ).text
        pages["bad filter"] = (await support.get(f"{console}/console/requests?kind=x")).text
        pages["bad move"] = (
            await support.post(f"{console}/console/requests/move", data={"_csrf_token": token})
        ).text
        pages["bad date"] = (
            await support.post(
                f"{case}/requests",
                data={
                    "_csrf_token": token,
                    "kind": "access",
                    "channel": "staff_email",
                    "received_at": "yesterday",
                },
            )
        ).text
        pages["confirm birth date"] = (
            await support.post(
                f"{case}/birth-date",
                data={"_csrf_token": token, "birth_date": "2014-05-30", "channel": "staff_email"},
            )
        ).text
        restricted = await support.post(
            f"{case}/restrict", data={"_csrf_token": token, "reason": "Contested birth date"}
        )
        pages["case restricted"] = (
            await support.get(f"{console}{restricted.headers['location']}")
        ).text
        pages["restricted again"] = (
            await support.post(f"{case}/restrict", data={"_csrf_token": token, "reason": "Again"})
        ).text
        pages["confirm lift"] = (
            await support.post(f"{case}/lift", data={"_csrf_token": token})
        ).text
        pages["erase refused"] = (await support.get(f"{case}/erase")).text
    async with httpx.AsyncClient(timeout=10.0, headers=language) as admin:
        token = csrf_token((await sign_in(admin, console, "admin")).text)
        pages["case (admin)"] = (await admin.get(case)).text
        pages["erase"] = (await admin.get(f"{case}/erase")).text
        pages["erase mistyped"] = (
            await admin.post(
                f"{case}/erase",
                data={"_csrf_token": token, "reason": "guardian_request", "typed_subject_id": "x"},
            )
        ).text
        erased = await admin.post(
            f"{case}/erase",
            data={"_csrf_token": token, "reason": "guardian_request", "typed_subject_id": SUBJECT},
        )
        assert erased.status_code == 200
        pages["erased"] = erased.text
    return pages


@pytest.mark.parametrize("locale", LOCALES)
async def test_every_rights_page_is_in_the_staff_members_language(
    console: str, locale: str, settings_for_console: Settings
) -> None:
    messages = console_messages(locale) if locale != "en" else []
    zone = ZoneInfo(console_timezone(settings_for_console))
    pages = await rights_pages(console, locale, zone)
    assert len(pages) == 15
    for name, html in pages.items():
        assert f'<html lang="{locale}">' in html, name
        assert not PLACEHOLDER_LEFT.search(html), (name, PLACEHOLDER_LEFT.search(html))
        for english, translated in messages:
            if english == translated or "%(" in english:
                continue
            left = esc(english) if len(english) >= 12 else f">{esc(english)}<"
            assert left not in html, (locale, name, english)
