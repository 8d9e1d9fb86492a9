"""The console's roles match the staff API's: support acts on a case, admin exports and erases,
and an admin-only staff member is refused every support action. Erasure from the console keeps
a reason category and the tracked rights request on the tombstone, never staff's words.

Over real HTTP, signed in through the real development identity provider; the admin-only
staff member is Ada Admin's session narrowed to the admin role."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from service.app import create_app
from service.clock import ManualClock
from service.consent.erasure_reasons import ERASURE_REASONS, ErasureReason
from service.settings import Settings
from tests.support.browser import live_server
from tests.support.console import (
    console_test_marks,
    csrf_token,
    narrow_session_roles,
    sign_in,
)
from tests.support.credentials import make_api_key
from tests.support.flows import check, create_request

pytestmark = console_test_marks()

GUARDIAN = "parent.roles@example.com"
SUBJECT = "child-roles-1"
OTHER = "child-roles-2"
STAFF_WORDS = "Mother called about Tim K."
NOT_ALLOWED = "Your role does not allow this page or action."


@pytest.fixture
async def console(settings_for_console: Settings, console_port: int) -> AsyncIterator[str]:
    app = create_app(settings_for_console, clock=ManualClock(datetime.now(UTC)))
    async with live_server(app, console_port) as base_url:
        yield base_url


@pytest.fixture
async def api(console: str, db: asyncpg.Connection) -> AsyncIterator[httpx.AsyncClient]:
    key = await make_api_key(db, "consent:request", "consent:check")
    async with httpx.AsyncClient(
        base_url=console, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
    ) as client:
        yield client


@pytest.fixture
async def subjects(api: httpx.AsyncClient) -> None:
    for subject_id in (SUBJECT, OTHER):
        await create_request(
            api, dict(api.headers), subject_id=subject_id, email=GUARDIAN, birth_date="2015-04-01"
        )


@asynccontextmanager
async def _staff(
    console: str, db: asyncpg.Connection, roles: list[str]
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """Ada Admin signed in with ``roles``, and the CSRF token."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        page = await sign_in(client, console, "admin")
        assert page.status_code == 200, page.text
        await narrow_session_roles(db, client, roles)
        yield client, csrf_token(page.text)


async def _status(api: httpx.AsyncClient, subject_id: str) -> str:
    answer: dict[str, Any] = await check(api, dict(api.headers), subject_id)
    return str(answer["status"])


async def _record_request(
    client: httpx.AsyncClient, console: str, token: str, subject_id: str, db: asyncpg.Connection
) -> uuid.UUID:
    answer = await client.post(
        f"{console}/console/subjects/{subject_id}/requests",
        data={
            "_csrf_token": token,
            "kind": "erasure",
            "channel": "staff_phone",
            "note": STAFF_WORDS,
        },
    )
    assert answer.status_code == 303, answer.text
    found: uuid.UUID = await db.fetchval(
        "select id from data_requests where subject_id = $1", subject_id
    )
    return found


async def test_an_admin_only_session_is_refused_every_support_action(
    console: str, subjects: None, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    request_id = await db.fetchval("select id from consent_requests where subject_id = $1", SUBJECT)
    async with _staff(console, db, ["admin"]) as (client, token):
        case = await client.get(f"{console}/console/subjects/{SUBJECT}")
        assert case.status_code == 200
        assert "Actions on a case need the support role." in case.text
        assert "Restricting processing and lifting a restriction need the support role." in (
            case.text
        )
        assert f"/console/requests/{request_id}/cancel" not in case.text
        assert "Erase the child&#39;s data…" in case.text
        support_actions = [
            ("POST", f"/console/requests/{request_id}/remind", {}),
            ("POST", f"/console/requests/{request_id}/unlock", {}),
            ("GET", f"/console/requests/{request_id}/cancel", {}),
            ("POST", f"/console/requests/{request_id}/cancel", {}),
            ("POST", f"/console/subjects/{SUBJECT}/restrict", {"reason": "Contested date"}),
            ("POST", f"/console/subjects/{SUBJECT}/lift", {"confirm": "yes"}),
            ("POST", f"/console/subjects/{SUBJECT}/requests", {"kind": "access"}),
            ("POST", "/console/requests/move", {"status": "done"}),
        ]
        for method, path, form in support_actions:
            answer = await client.request(
                method,
                f"{console}{path}",
                data={"_csrf_token": token, **form} if method == "POST" else None,
            )
            assert answer.status_code == 403, (method, path, answer.status_code)
            assert NOT_ALLOWED in answer.text
        # The admin's own pages stay open to the admin-only session.
        assert (await client.get(f"{console}/console/subjects/{SUBJECT}/erase")).status_code == 200
        assert (await client.get(f"{console}/console/admin/keys")).status_code == 200
        assert (await client.get(f"{console}/console/requests")).status_code == 200
    assert await _status(api, SUBJECT) == "pending"
    assert await db.fetchval("select count(*) from subject_restrictions") == 0
    assert await db.fetchval("select count(*) from data_requests") == 0
    assert (
        await db.fetchval("select status from consent_requests where id = $1", request_id)
        == "pending"
    )


async def test_a_support_only_session_cannot_erase(
    console: str, subjects: None, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    async with _staff(console, db, ["support"]) as (client, token):
        answer = await client.post(
            f"{console}/console/subjects/{SUBJECT}/erase",
            data={"_csrf_token": token, "reason": "guardian_request", "typed_subject_id": SUBJECT},
        )
    assert answer.status_code == 403
    assert await _status(api, SUBJECT) == "pending"


async def test_the_erasure_form_offers_the_categories_and_only_this_childs_requests(
    console: str, subjects: None, db: asyncpg.Connection
) -> None:
    async with _staff(console, db, ["admin", "support"]) as (client, token):
        own = await _record_request(client, console, token, SUBJECT, db)
        other = await _record_request(client, console, token, OTHER, db)
        form = await client.get(f"{console}/console/subjects/{SUBJECT}/erase")
    assert form.status_code == 200
    for reason in ErasureReason:
        assert f'value="{reason.value}"' in form.text
    assert "A legal obligation requires the erasure" in form.text
    assert f'value="{own}"' in form.text
    assert f'value="{other}"' not in form.text
    assert "<textarea" not in form.text


@pytest.mark.parametrize(
    ("reason", "request_of", "message"),
    [
        (STAFF_WORDS, None, "Choose why the child&#39;s data is erased."),
        ("", None, "Choose why the child&#39;s data is erased."),
        ("guardian_request", "other", "Choose one of this child&#39;s rights requests, or none."),
        ("guardian_request", "not-an-id", "Choose one of this child&#39;s rights requests, or"),
        ("guardian_request", "unknown", "Choose one of this child&#39;s rights requests, or"),
    ],
)
async def test_an_erasure_with_free_text_or_anothers_request_erases_nothing(
    console: str,
    subjects: None,
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    reason: str,
    request_of: str | None,
    message: str,
) -> None:
    async with _staff(console, db, ["admin", "support"]) as (client, token):
        other = await _record_request(client, console, token, OTHER, db)
        named = {
            None: "",
            "other": str(other),
            "not-an-id": "not-an-id",
            "unknown": str(uuid.uuid4()),
        }[request_of]
        answer = await client.post(
            f"{console}/console/subjects/{SUBJECT}/erase",
            data={
                "_csrf_token": token,
                "reason": reason,
                "data_request_id": named,
                "typed_subject_id": SUBJECT,
            },
        )
    assert answer.status_code == 422
    assert "Nothing was erased" in answer.text
    assert message in answer.text
    assert await _status(api, SUBJECT) == "pending"
    assert (
        await db.fetchval("select count(*) from audit_events where action = 'subject.erased'") == 0
    )


async def test_the_tombstone_keeps_the_category_and_the_request_but_no_staff_words(
    console: str, subjects: None, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    async with _staff(console, db, ["admin", "support"]) as (client, token):
        tracked = await _record_request(client, console, token, SUBJECT, db)
        erased = await client.post(
            f"{console}/console/subjects/{SUBJECT}/erase",
            data={
                "_csrf_token": token,
                "reason": "account_closed",
                "data_request_id": str(tracked),
                "typed_subject_id": SUBJECT,
            },
        )
    assert erased.status_code == 200, erased.text
    assert await _status(api, SUBJECT) == "none"
    tombstone = await db.fetchrow(
        "select actor, subject_id, reason, details from audit_events "
        "where action = 'subject.erased'"
    )
    assert (tombstone["actor"], tombstone["subject_id"]) == ("staff:admin", None)
    assert tombstone["reason"] == "account_closed"
    details = tombstone["details"]
    details = msgspec.json.decode(details) if isinstance(details, str | bytes) else details
    assert details["data_request_id"] == str(tracked)
    # The request keeps its anonymous facts; the staff note went with the child's data.
    row = await db.fetchrow(
        "select subject_id, note_enc, kind from data_requests where id = $1", tracked
    )
    assert (row["subject_id"], row["note_enc"], row["kind"]) == (None, None, "erasure")
    trail = await db.fetch("select reason, details::text as details from audit_events")
    assert all(STAFF_WORDS not in f"{event['reason']} {event['details']}" for event in trail)


def test_every_category_has_a_label() -> None:
    assert set(ERASURE_REASONS) == set(ErasureReason)
