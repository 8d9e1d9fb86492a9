"""The console's admin pages over real HTTP, signed in through the real development identity
provider: only the admin role reaches them; an API key created there works against the API
and stops working once revoked there; a dead email sent again there reaches a real SMTP
server; the audit chain is verified there; and the subject page's finishing touches (times in
the operator's zone, labelled timeline and messages, the child's own words)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.clock import ManualClock
from service.db import outbox as outbox_table
from service.dev.mailcatcher import Mailbox
from service.dev.pgcluster import free_port
from service.i18n import LOCALES
from service.settings import Settings, load_settings
from tests.support.browser import live_server
from tests.support.console import (
    PLACEHOLDER_LEFT,
    console_messages,
    console_test_marks,
    csrf_token,
    sign_in,
)
from tests.support.credentials import make_api_key
from tests.support.flows import create_request
from tests.support.rendering import esc
from tests.support.service import worker_for

pytestmark = console_test_marks()

GUARDIAN = "parent.admin@example.com"
SUBJECT = "child-admin-1"
KEY_IN_PAGE = re.compile(r'value="(csk_[A-Za-z0-9_-]+)"')
ADMIN_PAGES = ("/console/admin/outbox", "/console/admin/keys", "/console/admin/audit")
# Every admin route, with a form that is valid in shape (ids that name nothing).
ADMIN_ROUTES = (
    ("GET", "/console/admin/outbox", {}),
    ("POST", "/console/admin/outbox/retry", {"message_id": str(uuid.UUID(int=1))}),
    ("GET", "/console/admin/keys", {}),
    ("POST", "/console/admin/keys", {"name": "walk", "scope": "consent:check"}),
    ("GET", f"/console/admin/keys/revoke?key={uuid.UUID(int=2)}", {}),
    ("POST", "/console/admin/keys/revoke", {"key_id": str(uuid.UUID(int=2)), "confirm": "yes"}),
    ("GET", "/console/admin/audit", {}),
    ("POST", "/console/admin/audit/verify", {}),
)


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
async def admin(console: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as client:
        await sign_in(client, console, "admin")
        yield client


async def _token(client: httpx.AsyncClient, path: str = "/console") -> str:
    return csrf_token((await client.get(path)).text)


async def _until(predicate: object, what: str) -> None:
    """Bounded wait for a background event (a NOTIFY reaching the cache); not a timing test."""
    assert callable(predicate)
    for _ in range(200):
        if await predicate():
            return
        await asyncio.sleep(0.025)
    pytest.fail(f"gave up waiting: {what}")


async def test_admin_pages_are_for_admins_only(console: str, db: asyncpg.Connection) -> None:
    keys_before = await db.fetchval("select count(*) from api_keys")
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as anonymous:
        for method, path, form in ADMIN_ROUTES:
            answer = await anonymous.request(method, path, data=form or None)
            # A POST without a session is refused before it is read (no CSRF cookie yet).
            assert answer.status_code in (303, 403), (method, path, answer.status_code)
            if method == "GET":
                assert answer.headers["location"].startswith("/console/auth/login"), path
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as support:
        home = await sign_in(support, console, "support")
        assert "/console/admin/" not in home.text  # no links to pages it may not open
        token = csrf_token(home.text)
        for method, path, form in ADMIN_ROUTES:
            data = {**form, "_csrf_token": token} if method == "POST" else None
            answer = await support.request(method, path, data=data)
            assert answer.status_code == 403, (method, path, answer.status_code)
            assert "Your role does not allow this page or action." in answer.text
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as admin:
        home = await sign_in(admin, console, "admin")
        for page in ADMIN_PAGES:
            assert f'href="{page}"' in home.text
            answer = await admin.get(page)
            assert answer.status_code == 200, (page, answer.text)
            assert answer.headers["cache-control"] == "no-store"
            assert 'aria-current="page"' in answer.text
    assert await db.fetchval("select count(*) from api_keys") == keys_before
    viewed = await db.fetch(
        "select details->>'page' as page from audit_events "
        "where action = 'console.viewed' and actor = 'staff:admin'"
    )
    assert {"admin_outbox", "admin_keys", "admin_audit"} <= {row["page"] for row in viewed}


async def test_an_admin_form_without_its_csrf_token_changes_nothing(
    admin: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    keys_before = await db.fetchval("select count(*) from api_keys")
    events_before = await db.fetchval("select count(*) from audit_events")
    answer = await admin.post(
        "/console/admin/keys", data={"name": "no token", "scope": "consent:check"}
    )
    assert answer.status_code == 403
    assert "The form was not accepted" in answer.text
    assert "csk_" not in answer.text
    assert await db.fetchval("select count(*) from api_keys") == keys_before
    assert await db.fetchval("select count(*) from audit_events") == events_before
    verify = await admin.post("/console/admin/audit/verify", data={})
    assert verify.status_code == 403
    assert await db.fetchval("select count(*) from audit_events") == events_before


async def test_a_key_created_in_the_console_works_until_it_is_revoked_there(
    console: str, admin: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    token = await _token(admin, "/console/admin/keys")
    refused = await admin.post(
        "/console/admin/keys", data={"name": "  ", "scope": "consent:check", "_csrf_token": token}
    )
    assert refused.status_code == 422
    assert 'aria-invalid="true"' in refused.text
    refused = await admin.post(
        "/console/admin/keys", data={"name": "no scope", "_csrf_token": token}
    )
    assert refused.status_code == 422
    refused = await admin.post(
        "/console/admin/keys",
        data={"name": "bad scope", "scope": "consent:everything", "_csrf_token": token},
    )
    assert refused.status_code == 422
    assert await db.fetchval("select count(*) from api_keys") == 0

    created = await admin.post(
        "/console/admin/keys",
        data={"name": "signup app", "scope": "consent:check", "_csrf_token": token},
    )
    assert created.status_code == 200, created.text
    assert created.headers["cache-control"] == "no-store"
    match = KEY_IN_PAGE.search(created.text)
    assert match, created.text
    key = match.group(1)
    stored = await db.fetchrow("select id, name, scopes from api_keys")
    assert (stored["name"], stored["scopes"]) == ("signup app", ["consent:check"])
    event = await db.fetchrow(
        "select actor, details from audit_events where action = 'api_key.created'"
    )
    assert event["actor"] == "staff:admin"
    assert key not in event["details"]
    listing = await admin.get("/console/admin/keys")
    assert "signup app" in listing.text
    assert key not in listing.text  # shown once, never again

    async with httpx.AsyncClient(base_url=console, timeout=10.0) as app:
        check = "/v1/consents/check?subject_id=child-key-1&purpose=tutoring"
        headers = {"Authorization": f"Bearer {key}"}
        answer = await app.get(check, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["allowed"] is False

        confirm = await admin.get(f"/console/admin/keys/revoke?key={stored['id']}")
        assert confirm.status_code == 200
        assert "Revoke the API key “signup app”" in confirm.text
        unconfirmed = await admin.post(
            "/console/admin/keys/revoke",
            data={"key_id": str(stored["id"]), "_csrf_token": csrf_token(confirm.text)},
        )
        assert unconfirmed.status_code == 422
        assert await db.fetchval("select revoked_at from api_keys") is None
        assert (await app.get(check, headers=headers)).status_code == 200

        revoked = await admin.post(
            "/console/admin/keys/revoke",
            data={
                "key_id": str(stored["id"]),
                "confirm": "yes",
                "_csrf_token": csrf_token(confirm.text),
            },
        )
        assert revoked.status_code == 200
        assert "is revoked" in revoked.text
        assert await db.fetchval("select revoked_at from api_keys") is not None

        async def refused_now() -> bool:
            return (await app.get(check, headers=headers)).status_code == 401

        await _until(refused_now, "the revoked key to be refused")
    again = await admin.post(
        "/console/admin/keys/revoke",
        data={"key_id": str(stored["id"]), "confirm": "yes", "_csrf_token": token},
    )
    assert again.status_code == 409
    unknown = await admin.get(f"/console/admin/keys/revoke?key={uuid.uuid4()}")
    assert unknown.status_code == 404
    malformed = await admin.get("/console/admin/keys/revoke?key=not-a-key")
    assert malformed.status_code == 404
    events = await db.fetch("select actor from audit_events where action = 'api_key.revoked'")
    assert [row["actor"] for row in events] == ["staff:admin"]


async def test_a_dead_email_sent_again_from_the_console_reaches_the_guardian(
    console: str,
    admin: httpx.AsyncClient,
    db: asyncpg.Connection,
    base_env: dict[str, str],
    settings_for_console: Settings,
    console_clock: ManualClock,
    mailbox: Mailbox,
) -> None:
    key = await make_api_key(db, "consent:request")
    request_id = await create_request(
        admin,
        {"Authorization": f"Bearer {key}"},
        subject_id=SUBJECT,
        email=GUARDIAN,
        birth_date="2015-04-01",
    )
    unreachable = load_settings(
        {
            **base_env,
            "CONSENT_PUBLIC_URL": settings_for_console.public_url,
            "CONSENT_SMTP_URL": f"smtp://127.0.0.1:{free_port()}?timeout=5",
            "CONSENT_OUTBOX_MAX_ATTEMPTS": "1",
        }
    )
    async with worker_for(unreachable, console_clock) as failing:
        await failing.deliver_due()
    dead = await db.fetchrow(
        "select id, status, attempts from outbox where related_id = $1 and kind = 'email'",
        request_id,
    )
    assert dead["status"] == "dead"
    assert not mailbox.to(GUARDIAN)

    page = await admin.get("/console/admin/outbox")
    assert page.status_code == 200
    assert f'value="{dead["id"]}"' in page.text
    assert "Consent request to the guardian" in page.text
    assert '<code class="raw-id">guardian_request</code>' in page.text

    token = csrf_token(page.text)
    malformed = await admin.post(
        "/console/admin/outbox/retry", data={"message_id": "x", "_csrf_token": token}
    )
    assert malformed.status_code == 400
    retried = await admin.post(
        "/console/admin/outbox/retry", data={"message_id": str(dead["id"]), "_csrf_token": token}
    )
    assert retried.status_code == 200
    assert "queued" in retried.text
    row = await db.fetchrow("select status, attempts from outbox where id = $1", dead["id"])
    assert (row["status"], row["attempts"]) == ("pending", 0)
    event = await db.fetchrow(
        "select actor, details from audit_events where action = 'outbox.retried'"
    )
    assert event["actor"] == "staff:admin"
    assert str(dead["id"]) in event["details"]
    twice = await admin.post(
        "/console/admin/outbox/retry", data={"message_id": str(dead["id"]), "_csrf_token": token}
    )
    assert twice.status_code == 409

    async with worker_for(settings_for_console, console_clock) as working:
        assert await working.deliver_due() >= 1
    assert (await db.fetchval("select status from outbox where id = $1", dead["id"])) == "sent"
    [delivered] = mailbox.to(GUARDIAN)
    assert any("/guardian/" in link for link in delivered.links)


async def test_a_dead_message_without_its_content_cannot_be_sent_again(
    admin: httpx.AsyncClient,
    db: asyncpg.Connection,
    base_env: dict[str, str],
    settings_for_console: Settings,
    console_clock: ManualClock,
) -> None:
    key = await make_api_key(db, "consent:request")
    request_id = await create_request(
        admin,
        {"Authorization": f"Bearer {key}"},
        subject_id="child-admin-2",
        email="scrubbed@example.com",
        birth_date="2015-04-01",
    )
    unreachable = load_settings(
        {
            **base_env,
            "CONSENT_PUBLIC_URL": settings_for_console.public_url,
            "CONSENT_SMTP_URL": f"smtp://127.0.0.1:{free_port()}?timeout=5",
            "CONSENT_OUTBOX_MAX_ATTEMPTS": "1",
        }
    )
    async with worker_for(unreachable, console_clock) as failing:
        await failing.deliver_due()
    message_id = await db.fetchval(
        "select id from outbox where related_id = $1 and status = 'dead'", request_id
    )
    # What the retention sweep does to old dead messages.
    await outbox_table.drop_undelivered_payloads(db, datetime.now(UTC).replace(year=3000))
    page = await admin.get("/console/admin/outbox")
    assert "Cannot be sent again: its content was deleted." in page.text
    assert f'value="{message_id}"' not in page.text
    answer = await admin.post(
        "/console/admin/outbox/retry",
        data={"message_id": str(message_id), "_csrf_token": csrf_token(page.text)},
    )
    assert answer.status_code == 409
    assert "what it said was deleted" in answer.text
    assert await db.fetchval("select status from outbox where id = $1", message_id) == "dead"
    assert (
        await db.fetchval("select count(*) from audit_events where action = 'outbox.retried'") == 0
    )


async def test_the_audit_chain_is_verified_from_the_console(
    admin: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    head = await db.fetchrow("select id, chain_hash from audit_events order by id desc limit 1")
    page = await admin.get("/console/admin/audit")
    assert page.status_code == 200
    assert head["chain_hash"].hex() in page.text
    assert f"--expect-head {head['id']}:{head['chain_hash'].hex()}" in page.text
    events = await db.fetchval("select count(*) from audit_events")
    verified = await admin.post(
        "/console/admin/audit/verify", data={"_csrf_token": csrf_token(page.text)}
    )
    assert verified.status_code == 200
    assert "The chain is intact" in verified.text
    assert f"{events} events verified." in verified.text
    run = await db.fetchrow(
        "select actor, details from audit_events where action = 'audit.verified'"
    )
    assert run["actor"] == "staff:admin"

    # What someone with database superuser rights could do behind the service's back.
    target = await db.fetchval("select min(id) from audit_events where action = 'console.viewed'")
    async with db.transaction():
        await db.execute("alter table audit_events disable trigger audit_events_append_only")
        await db.execute(
            "update audit_events set actor = 'staff:someone-else' where id = $1", target
        )
        await db.execute("alter table audit_events enable trigger audit_events_append_only")
    broken = await admin.post(
        "/console/admin/audit/verify", data={"_csrf_token": csrf_token(page.text)}
    )
    assert broken.status_code == 200
    assert f"The chain is broken at event {target}" in broken.text
    earlier = await db.fetchval("select count(*) from audit_events where id < $1", target)
    assert f"{earlier} earlier event" in broken.text


@pytest.mark.parametrize("locale", [locale for locale in LOCALES if locale != "en"])
async def test_the_admin_pages_are_in_the_staff_members_language(
    console: str, db: asyncpg.Connection, locale: str
) -> None:
    await make_api_key(db, "consent:check", name="signup")
    key_id = await db.fetchval("select id from api_keys")
    pages: dict[str, str] = {}
    headers = {"Accept-Language": locale}
    async with httpx.AsyncClient(base_url=console, timeout=10.0, headers=headers) as admin:
        home = await sign_in(admin, console, "admin")
        token = csrf_token(home.text)
        pages["home"] = home.text
        for path in ADMIN_PAGES:
            pages[path] = (await admin.get(path)).text
        pages["confirm"] = (await admin.get(f"/console/admin/keys/revoke?key={key_id}")).text
        pages["unconfirmed"] = (
            await admin.post(
                "/console/admin/keys/revoke", data={"key_id": str(key_id), "_csrf_token": token}
            )
        ).text
        pages["refused"] = (
            await admin.post("/console/admin/keys", data={"name": "x", "_csrf_token": token})
        ).text
        pages["created"] = (
            await admin.post(
                "/console/admin/keys",
                data={"name": "app", "scope": "consent:check", "_csrf_token": token},
            )
        ).text
        pages["retry"] = (
            await admin.post(
                "/console/admin/outbox/retry",
                data={"message_id": str(uuid.uuid4()), "_csrf_token": token},
            )
        ).text
        pages["verified"] = (
            await admin.post("/console/admin/audit/verify", data={"_csrf_token": token})
        ).text
    # The same check as test_console_texts makes of the other console pages.
    messages = console_messages(locale)
    assert messages
    for name, html in pages.items():
        assert f'<html lang="{locale}">' in html, name
        assert not PLACEHOLDER_LEFT.search(html), (name, PLACEHOLDER_LEFT.search(html))
        for english, translated in messages:
            if english == translated or "%(" in english:
                continue
            left = esc(english) if len(english) >= 12 else f">{esc(english)}<"
            assert left not in html, (locale, name, english)
