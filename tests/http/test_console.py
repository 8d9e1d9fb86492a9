"""The support console over real HTTP, signed in through the real development identity
provider: sessions (idle and absolute limits, logout), state and nonce checks, the audit
events of views, and every console route walked with no session, support and admin."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import msgspec
import pytest

from service.app import create_app
from service.clock import ManualClock
from service.security.personal_data import DataProtector
from service.settings import Settings
from tests.support.browser import live_server
from tests.support.console import (
    callback_url,
    console_test_marks,
    csrf_token,
    narrow_session_roles,
    reach_sign_in_page,
    session_cookie,
    sign_in,
)
from tests.support.credentials import make_api_key
from tests.support.flows import create_request

pytestmark = console_test_marks()

GUARDIAN = "parent.console@example.com"
SUBJECT = "child-console-1"
SIGN_IN_CONTEXT = b"consent/console-sign-in/v1"


@pytest.fixture
def console_clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture
async def console(
    settings_for_console: Settings, console_port: int, console_clock: ManualClock
) -> AsyncIterator[str]:
    app = create_app(settings_for_console, clock=console_clock)
    async with live_server(app, console_port) as base_url:
        yield base_url


@pytest.fixture
async def browser_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


@pytest.fixture
async def subject(console: str, db: asyncpg.Connection) -> str:
    key = await make_api_key(db, "consent:request", "consent:check")
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as api:
        await create_request(
            api,
            {"Authorization": f"Bearer {key}"},
            subject_id=SUBJECT,
            email=GUARDIAN,
            birth_date="2015-04-01",
        )
    return SUBJECT


async def test_without_a_session_the_console_sends_the_browser_to_sign_in(
    console: str, browser_client: httpx.AsyncClient
) -> None:
    answer = await browser_client.get(f"{console}/console/subjects/{SUBJECT}")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/console/auth/login?next=/console/subjects/{SUBJECT}"
    start = await browser_client.get(f"{console}{answer.headers['location']}")
    assert start.status_code == 303
    target = httpx.URL(start.headers["location"])
    params = dict(target.params)
    assert params["code_challenge_method"] == "S256"
    assert params["code_challenge"]
    assert params["state"]
    assert params["nonce"]
    assert params["redirect_uri"] == f"{console}/console/auth/callback"
    assert set(params["scope"].split()) == {"openid", "profile", "email"}


async def test_sign_in_opens_a_session_with_a_safe_cookie_and_an_audit_event(
    console: str, browser_client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    url = await callback_url(browser_client, console, "support")
    answer = await browser_client.get(url)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console"
    [cookie] = [c for c in answer.headers.get_list("set-cookie") if "console_session=" in c]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=lax" in cookie.lower()
    session_id = session_cookie(browser_client)
    assert session_id
    stored = await db.fetch("select id_hash, staff_sub, roles from console_sessions")
    assert [(r["staff_sub"], r["roles"]) for r in stored] == [("support", ["support"])]
    assert stored[0]["id_hash"] == hashlib.sha256(session_id.encode()).digest()
    home = await browser_client.get(f"{console}/console")
    assert home.status_code == 200
    assert "Signed in as Sam Support" in home.text
    assert home.headers["cache-control"] == "no-store"
    csp = home.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    actions = [
        (r["actor"], r["action"])
        for r in await db.fetch("select actor, action from audit_events order by id")
    ]
    assert ("staff:support", "console.signed_in") in actions
    assert ("staff:support", "console.viewed") in actions


async def test_a_user_without_a_console_role_gets_no_session(
    console: str, browser_client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    page = await sign_in(browser_client, console, "nobody")
    assert page.status_code == 403
    assert "neither the support nor the admin role" in page.text
    assert await db.fetchval("select count(*) from console_sessions") == 0


async def test_a_changed_state_is_refused(
    console: str, browser_client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    url = httpx.URL(await callback_url(browser_client, console, "support"))
    forged = url.copy_set_param("state", "not-the-state-this-browser-started")
    answer = await browser_client.get(forged)
    assert answer.status_code == 400
    assert "did not match the sign-in started in this browser" in answer.text
    assert await db.fetchval("select count(*) from console_sessions") == 0
    # The sign-in was used up: the genuine answer no longer works either.
    assert (await browser_client.get(url)).status_code == 400


async def test_an_id_token_for_another_nonce_is_refused(
    console: str,
    browser_client: httpx.AsyncClient,
    db: asyncpg.Connection,
    settings_for_console: Settings,
) -> None:
    url = await callback_url(browser_client, console, "support")
    protector = DataProtector(settings_for_console.data_key)
    sealed = base64.urlsafe_b64decode(browser_client.cookies["console_sign_in"])
    pending = msgspec.json.decode(protector.decrypt(sealed, SIGN_IN_CONTEXT))
    pending["nonce"] = "a-nonce-the-identity-provider-never-saw"
    browser_client.cookies.set(
        "console_sign_in",
        base64.urlsafe_b64encode(
            protector.encrypt(msgspec.json.encode(pending), SIGN_IN_CONTEXT)
        ).decode(),
        domain="127.0.0.1",
        path="/console/auth",
    )
    answer = await browser_client.get(url)
    assert answer.status_code == 400
    assert await db.fetchval("select count(*) from console_sessions") == 0


async def test_a_callback_without_a_started_sign_in_is_refused(
    console: str, browser_client: httpx.AsyncClient
) -> None:
    answer = await browser_client.get(f"{console}/console/auth/callback?code=x&state=y")
    assert answer.status_code == 400


async def test_an_idle_session_returns_to_sign_in(
    console: str, browser_client: httpx.AsyncClient, console_clock: ManualClock
) -> None:
    await sign_in(browser_client, console, "support")
    console_clock.advance(timedelta(minutes=29))
    assert (await browser_client.get(f"{console}/console")).status_code == 200
    console_clock.advance(timedelta(minutes=30))
    answer = await browser_client.get(f"{console}/console")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/auth/login")
    # Once idle, it stays ended even if the clock were to move back.
    console_clock.advance(timedelta(minutes=-30))
    assert (await browser_client.get(f"{console}/console")).status_code == 303


async def test_a_session_ends_after_its_lifetime_however_busy(
    console: str, browser_client: httpx.AsyncClient, console_clock: ManualClock
) -> None:
    signed_in_at = console_clock.now()
    await sign_in(browser_client, console, "support")
    for _ in range(20):  # 20 x 29 min > 8 h, never idle for 30 min
        console_clock.advance(timedelta(minutes=29))
        answer = await browser_client.get(f"{console}/console")
        if answer.status_code == 303:
            break
    assert answer.status_code == 303
    assert console_clock.now() - signed_in_at >= timedelta(hours=8)
    assert console_clock.now() - signed_in_at < timedelta(hours=8, minutes=29)


async def test_logout_ends_the_session_and_the_old_cookie_no_longer_works(
    console: str, browser_client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    home = await sign_in(browser_client, console, "support")
    old = session_cookie(browser_client)
    assert old
    answer = await browser_client.post(
        f"{console}/console/auth/logout", data={"_csrf_token": csrf_token(home.text)}
    )
    assert answer.status_code == 303
    # The identity provider offers RP-initiated logout: the browser goes there next.
    assert "/session/end" in answer.headers["location"]
    assert "post_logout_redirect_uri" in answer.headers["location"]
    assert await db.fetchval("select count(*) from console_sessions where ended_at is null") == 0
    async with httpx.AsyncClient(timeout=10.0, cookies={"console_session": old}) as replay:
        again = await replay.get(f"{console}/console")
    assert again.status_code == 303
    assert again.headers["location"].startswith("/console/auth/login")
    actions = [r["action"] for r in await db.fetch("select action from audit_events")]
    assert "console.signed_out" in actions


async def test_a_form_without_its_csrf_token_is_refused(
    console: str, browser_client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await sign_in(browser_client, console, "support")
    answer = await browser_client.post(
        f"{console}/console/search", data={"by": "guardian", "query": GUARDIAN}
    )
    assert answer.status_code == 403
    assert "The form was not accepted" in answer.text


async def test_search_by_guardian_address_finds_the_child_and_is_audited(
    console: str, subject: str, browser_client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    home = await sign_in(browser_client, console, "support")
    found = await browser_client.post(
        f"{console}/console/search",
        data={
            "by": "guardian",
            "query": "Parent.Console+x@example.com",
            "_csrf_token": csrf_token(home.text),
        },
    )
    assert found.status_code == 200
    assert f'href="/console/subjects/{subject}"' in found.text
    assert GUARDIAN not in found.text
    event = await db.fetchrow(
        "select actor, details from audit_events where action = 'console.searched'"
    )
    assert event["actor"] == "staff:support"
    assert "example.com" not in event["details"]
    page = await browser_client.get(f"{console}/console/subjects/{subject}")
    assert page.status_code == 200
    assert "request.created" in page.text
    assert "p***@e***.com" in page.text
    viewed = await db.fetchval(
        "select count(*) from audit_events where action = 'console.viewed' and subject_id = $1",
        subject,
    )
    assert viewed == 1


async def test_an_invalid_search_is_explained_next_to_the_field(
    console: str, browser_client: httpx.AsyncClient
) -> None:
    home = await sign_in(browser_client, console, "support")
    answer = await browser_client.post(
        f"{console}/console/search",
        data={"by": "guardian", "query": "no address", "_csrf_token": csrf_token(home.text)},
    )
    assert answer.status_code == 422
    assert 'aria-describedby="query-error"' in answer.text


def _console_handlers(settings: Settings) -> list[tuple[str, str, tuple[str, ...]]]:
    """Every console route (method, path, roles) but the sign-in's, from the route table."""
    app = create_app(settings)
    found = []
    for route in app.routes:
        if not route.path.startswith("/console"):
            continue
        for handler in route.route_handlers:  # type: ignore[attr-defined]
            if handler.opt.get("sign_in"):
                continue
            # Litestar answers OPTIONS itself (the allowed methods, nothing read).
            for method in sorted(handler.http_methods - {"OPTIONS"}):
                found.append((method, route.path, tuple(handler.opt.get("roles", ()))))
    return found


# A value for each path parameter a console route may have; a new parameter needs one here.
PATH_VALUES = {
    "subject_id": SUBJECT,
    "consent_id": "00000000-0000-4000-8000-000000000001",
    "request_id": "00000000-0000-4000-8000-000000000002",
}


def _fill(path: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in PATH_VALUES, f"add a sample value for the path parameter {name}"
        return PATH_VALUES[name]

    return re.sub(r"\{(\w+)(?::\w+)?\}", value, path)


async def _walk(client: httpx.AsyncClient, base_url: str, method: str, path: str) -> httpx.Response:
    token = client.cookies.get("csrftoken")
    if token is None:
        await client.get(f"{base_url}/console/auth/signed-out")
        token = client.cookies.get("csrftoken")
    headers = {"x-csrftoken": token} if method not in ("GET", "HEAD") else {}
    return await client.request(method, f"{base_url}{_fill(path)}", headers=headers, data={})


async def test_every_console_route_checks_the_session_and_its_role(
    console: str, subject: str, settings_for_console: Settings, db: asyncpg.Connection
) -> None:
    routes = _console_handlers(settings_for_console)
    assert ("GET", "/console/subjects/{subject_id:str}", ("support", "admin")) in routes
    for method, path, roles in routes:
        assert roles, f"{method} {path} names no role"
    async with httpx.AsyncClient(timeout=10.0) as anonymous:
        for method, path, _ in routes:
            answer = await _walk(anonymous, console, method, path)
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"].startswith("/console/auth/login"), (method, path)
    # Ada Admin holds both roles; the admin-only staff member is her session narrowed to admin.
    walks = (
        ("support", {"support"}),
        ("admin", {"support", "admin"}),
        ("admin", {"admin"}),
    )
    for user, held in walks:
        async with httpx.AsyncClient(timeout=10.0) as staff:
            await sign_in(staff, console, user)
            await narrow_session_roles(db, staff, sorted(held))
            for method, path, roles in routes:
                answer = await _walk(staff, console, method, path)
                assert answer.status_code < 500, (user, method, path, answer.text)
                if held & set(roles):
                    assert answer.status_code not in (303, 401, 403), (user, method, path)
                else:
                    assert answer.status_code == 403, (user, method, path)


async def test_the_console_is_off_without_an_issuer(client: httpx.AsyncClient) -> None:
    for path in ("/console", "/console/auth/login", "/console/auth/callback"):
        assert (await client.get(path)).status_code == 404


async def test_the_sign_in_page_of_the_provider_offers_support_and_admin(
    console: str, browser_client: httpx.AsyncClient
) -> None:
    action = await reach_sign_in_page(browser_client, console)
    assert "/interaction/" in action
