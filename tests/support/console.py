"""Signing in to the support console through the real development identity provider
(``devidp/``, oidc-provider), over HTTP as a browser would, and the settings that point a
console at it."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from babel.messages.pofile import read_po

from service.app import create_app
from service.clock import ManualClock
from service.dev.identity_provider import DEVIDP_DIR
from service.i18n import LOCALE_DIR
from service.settings import Settings, load_settings
from tests.support.browser import live_server
from tests.support.credentials import make_api_key
from tests.support.flows import create_request

LOOPBACK_CALLBACK = "http://127.0.0.1/console/auth/callback"
SIGN_IN_PAGE = re.compile(r'action="(/interaction/[A-Za-z0-9_-]+)"')
CSRF_INPUT = re.compile(r'name="_csrf_token" value="([^"]+)"')


def identity_provider_unavailable() -> str | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "Node.js is missing: apt-get install nodejs npm (make test installs devidp/)"
    if not (DEVIDP_DIR / "package-lock.json").is_file():
        return f"{DEVIDP_DIR} is missing"
    return None


def console_test_marks() -> list[pytest.MarkDecorator]:
    unavailable = identity_provider_unavailable()
    return [pytest.mark.skipif(unavailable is not None, reason=unavailable or "")]


def console_settings(base_env: dict[str, str], port: int, issuer: str, **env: str) -> Settings:
    return load_settings(
        {
            **base_env,
            "CONSENT_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "CONSENT_STAFF_OIDC_ISSUER": issuer,
            "CONSENT_STAFF_OIDC_CLIENT_ID": "consent-console",
            **env,
        }
    )


async def reach_sign_in_page(
    client: httpx.AsyncClient, base_url: str, path: str = "/console"
) -> str:
    """Follow the console to the identity provider's page; the form's absolute action."""
    page = await client.get(f"{base_url}{path}", follow_redirects=True)
    assert page.status_code == 200, page.text
    match = SIGN_IN_PAGE.search(page.text)
    assert match, page.text
    return str(page.url.copy_with(path=match.group(1), query=None))


async def callback_url(client: httpx.AsyncClient, base_url: str, user: str) -> str:
    """Start a sign-in and pick ``user`` at the identity provider; the callback URL it sends
    the browser to (not yet followed)."""
    action = await reach_sign_in_page(client, base_url)
    answer = await client.post(action, data={"user": user})
    while (
        answer.status_code in (302, 303)
        and "/console/auth/callback" not in answer.headers["location"]
    ):
        answer = await client.get(
            httpx.URL(str(answer.url)).join(answer.headers["location"]), follow_redirects=False
        )
    assert answer.status_code in (302, 303), answer.text
    return str(httpx.URL(str(answer.url)).join(answer.headers["location"]))


async def sign_in(client: httpx.AsyncClient, base_url: str, user: str) -> httpx.Response:
    """Sign in as a development user (``support``, ``admin``, ``nobody``); the page reached."""
    url = await callback_url(client, base_url, user)
    return await client.get(url, follow_redirects=True)


def csrf_token(page_html: str) -> str:
    match = CSRF_INPUT.search(page_html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def session_cookie(client: httpx.AsyncClient) -> str | None:
    value: Any = client.cookies.get("console_session")
    return str(value) if value else None


PLACEHOLDER_LEFT = re.compile(r"%\(\w+\)|\{\{|\}\}")


def console_messages(locale: str) -> list[tuple[str, str]]:
    """(English, translation) of every message the console's templates and code use."""
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    found = []
    for message in catalog:
        if not message.id or not any("console" in path for path, _ in message.locations):
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        found += list(zip(ids, strings, strict=False))
    return found


async def narrow_session_roles(db: Any, client: httpx.AsyncClient, roles: list[str]) -> None:
    """Leave the signed-in session of ``client`` only ``roles`` (the development provider's
    Ada Admin holds both roles, as an operator's administrator usually does; an admin-only
    staff member is made from her session)."""
    cookie = session_cookie(client)
    assert cookie, "not signed in"
    changed = await db.execute(
        "update console_sessions set roles = $2 where id_hash = $1",
        hashlib.sha256(cookie.encode()).digest(),
        roles,
    )
    assert changed == "UPDATE 1"


@asynccontextmanager
async def console_with_a_request(
    settings: Settings, port: int, db: Any, *, subject_id: str, guardian: str
) -> AsyncIterator[str]:
    """A live console server (its base URL) holding one pending request for ``subject_id``."""
    app = create_app(settings, clock=ManualClock(datetime.now(UTC)))
    async with live_server(app, port) as base_url:
        key = await make_api_key(db, "consent:request", "consent:check")
        async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as api:
            await create_request(
                api,
                {"Authorization": f"Bearer {key}"},
                subject_id=subject_id,
                email=guardian,
                birth_date="2015-04-01",
            )
        yield base_url
