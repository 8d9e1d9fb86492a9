"""Rights work in the console over real HTTP, signed in through the real development identity
provider: the rights-requests queue, restriction, rectification, export and erasure; each
route's session and role check, forms without their CSRF token, and a mistyped subject id."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.clock import ManualClock
from service.http.console.rights import ConsoleRightsController
from service.http.console.times import console_timezone
from service.settings import Settings
from service.worker import Worker
from tests.support.browser import live_server
from tests.support.console import (
    console_test_marks,
    csrf_token,
    narrow_session_roles,
    sign_in,
)
from tests.support.credentials import make_api_key
from tests.support.flows import check, create_request, grant_via_link, request_link
from tests.support.service import worker_for

pytestmark = console_test_marks()

GUARDIAN = "parent.rights@example.com"
SUBJECT = "child-rights-1"
OTHER = "child-rights-2"
ADMIN_ONLY = {
    "/console/subjects/{subject_id:str}/export",
    "/console/subjects/{subject_id:str}/erase",
}


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
async def api(console: str, db: asyncpg.Connection) -> AsyncIterator[httpx.AsyncClient]:
    key = await make_api_key(db, "consent:request", "consent:check")
    async with httpx.AsyncClient(
        base_url=console, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
    ) as client:
        yield client


@pytest.fixture
async def subject(api: httpx.AsyncClient) -> str:
    await create_request(
        api, dict(api.headers), subject_id=SUBJECT, email=GUARDIAN, birth_date="2015-04-01"
    )
    return SUBJECT


@asynccontextmanager
async def _staff(console: str, user: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A browser signed in as ``user``, and its CSRF token."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        page = await sign_in(client, console, user)
        assert page.status_code == 200, page.text
        yield client, csrf_token(page.text)


async def _check(api: httpx.AsyncClient, subject_id: str) -> dict[str, Any]:
    return await check(api, dict(api.headers), subject_id)


def _rights_routes(settings: Settings) -> list[tuple[str, str, tuple[str, ...]]]:
    """This module's console routes (method, path, roles), from the app's route table."""
    found = []
    for route in create_app(settings).routes:
        for handler in route.route_handlers:  # type: ignore[attr-defined]
            if not handler.fn.__qualname__.startswith(f"{ConsoleRightsController.__name__}."):
                continue
            for method in sorted(handler.http_methods - {"OPTIONS"}):
                found.append((method, route.path, tuple(handler.opt.get("roles", ()))))
    return found


def _fill(path: str, subject_id: str) -> str:
    return re.sub(r"\{subject_id(?::\w+)?\}", subject_id, path)


async def test_every_rights_route_checks_the_session_and_its_role(
    console: str,
    subject: str,
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    settings_for_console: Settings,
) -> None:
    routes = _rights_routes(settings_for_console)
    assert len(routes) == 10
    for method, path, roles in routes:
        assert roles, f"{method} {path} names no role"
        if path in ADMIN_ONLY:
            assert roles == ("admin",), path
        elif (method, path) == ("GET", "/console/requests"):
            assert roles == ("support", "admin"), path
        else:
            assert roles == ("support",), (method, path)
    async with httpx.AsyncClient(timeout=10.0) as anonymous:
        # a CSRF token of its own, so that only the missing session is refused
        await anonymous.get(f"{console}/console/auth/signed-out")
        headers = {"x-csrftoken": anonymous.cookies["csrftoken"]}
        for method, path, _ in routes:
            answer = await anonymous.request(
                method, f"{console}{_fill(path, subject)}", headers=headers
            )
            assert answer.status_code == 303, (method, path)
            assert answer.headers["location"].startswith("/console/auth/login")
    walks = (
        ("support", {"support"}),
        ("admin", {"support", "admin"}),
        ("admin", {"admin"}),
    )
    for user, held in walks:
        async with _staff(console, user) as (client, token):
            await narrow_session_roles(db, client, sorted(held))
            for method, path, roles in routes:
                answer = await client.request(
                    method,
                    f"{console}{_fill(path, subject)}",
                    data={"_csrf_token": token} if method == "POST" else None,
                )
                assert answer.status_code < 500, (user, method, path, answer.text)
                if held & set(roles):
                    assert answer.status_code not in (303, 401, 403), (user, method, path)
                else:
                    assert answer.status_code == 403, (user, method, path)
                    assert "Your role does not allow this page or action." in answer.text
    # Walking every route with empty forms changed nothing: the request is still pending.
    assert (await _check(api, subject))["status"] == "pending"
    assert await db.fetchval("select count(*) from data_requests") == 0


async def test_a_rights_form_without_its_csrf_token_changes_nothing(
    console: str, subject: str, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    async with _staff(console, "support") as (client, _):
        answer = await client.post(
            f"{console}/console/subjects/{subject}/restrict", data={"reason": "Contested date"}
        )
    assert answer.status_code == 403
    assert "The form was not accepted" in answer.text
    async with _staff(console, "admin") as (client, _):
        erase = await client.post(
            f"{console}/console/subjects/{subject}/erase",
            data={"reason": "By letter", "typed_subject_id": subject},
        )
    assert erase.status_code == 403
    assert (await _check(api, subject))["status"] == "pending"
    assert await db.fetchval("select count(*) from subject_restrictions") == 0


async def test_restrict_and_lift_with_a_confirmation_step(
    console: str, subject: str, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    async with _staff(console, "support") as (client, token):
        blank = await client.post(
            f"{console}/console/subjects/{subject}/restrict",
            data={"_csrf_token": token, "reason": "  "},
        )
        assert blank.status_code == 422
        assert "Nothing was changed" in blank.text
        assert (await _check(api, subject))["status"] == "pending"
        done = await client.post(
            f"{console}/console/subjects/{subject}/restrict",
            data={"_csrf_token": token, "reason": "The guardian contests the birth date."},
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/console/subjects/{subject}?done=restricted"
        assert (await _check(api, subject))["status"] == "restricted"
        page = await client.get(f"{console}{done.headers['location']}")
        assert page.status_code == 200
        assert "Processing is restricted: the check allows no purpose until" in page.text
        assert "<td>restricted</td>" in page.text
        again = await client.post(
            f"{console}/console/subjects/{subject}/restrict",
            data={"_csrf_token": token, "reason": "Once more"},
        )
        assert again.status_code == 409
        confirm = await client.post(
            f"{console}/console/subjects/{subject}/lift", data={"_csrf_token": token}
        )
        assert confirm.status_code == 200
        assert "Lift the restriction?" in confirm.text
        assert (await _check(api, subject))["status"] == "restricted"
        lifted = await client.post(
            f"{console}/console/subjects/{subject}/lift",
            data={"_csrf_token": token, "confirm": "yes"},
        )
        assert lifted.status_code == 303
    assert (await _check(api, subject))["status"] == "pending"
    actors = await db.fetch(
        "select action, actor from audit_events where action like 'subject.%restricted'"
    )
    assert [(r["action"], r["actor"]) for r in actors] == [
        ("subject.restricted", "staff:support"),
        ("subject.unrestricted", "staff:support"),
    ]


async def test_the_queue_shows_overdue_requests_first_and_support_moves_one_to_done(
    console: str,
    subject: str,
    db: asyncpg.Connection,
    console_clock: ManualClock,
    settings_for_console: Settings,
) -> None:
    zone = ZoneInfo(console_timezone(settings_for_console))
    late = (console_clock.now() - timedelta(days=20)).astimezone(zone)
    async with _staff(console, "support") as (client, token):
        recent = await client.post(
            f"{console}/console/subjects/{subject}/requests",
            data={"_csrf_token": token, "kind": "access", "channel": "staff_email"},
        )
        assert recent.status_code == 303
        old = await client.post(
            f"{console}/console/subjects/{OTHER}/requests",
            data={
                "_csrf_token": token,
                "kind": "erasure",
                "channel": "staff_letter",
                "note": "Letter from the father",
                "received_at": late.strftime("%Y-%m-%dT%H:%M"),
            },
        )
        assert old.status_code == 303
        future = await client.post(
            f"{console}/console/subjects/{subject}/requests",
            data={
                "_csrf_token": token,
                "kind": "access",
                "channel": "staff_email",
                "received_at": (console_clock.now() + timedelta(days=2))
                .astimezone(zone)
                .strftime("%Y-%m-%dT%H:%M"),
            },
        )
        assert future.status_code == 422
        assert await db.fetchval("select count(*) from data_requests") == 2
        queue = await client.get(f"{console}/console/requests")
        assert queue.status_code == 200
        items = re.findall(
            r'<li class="queue-item( overdue)?">.*?href="/console/subjects/([^"]+)"',
            queue.text,
            re.S,
        )
        assert items == [(" overdue", OTHER), ("", SUBJECT)]
        assert ">Overdue</span>" in queue.text
        overdue_id = await db.fetchval("select id from data_requests where subject_id = $1", OTHER)
        refused = await client.post(
            f"{console}/console/requests/move",
            data={"_csrf_token": token, "request_id": str(overdue_id), "status": "refused"},
        )
        assert refused.status_code == 422
        moved = await client.post(
            f"{console}/console/requests/move",
            data={
                "_csrf_token": token,
                "request_id": str(overdue_id),
                "status": "done",
                "text": "Erased after the letter.",
            },
        )
        assert moved.status_code == 303
        closed = await client.post(
            f"{console}/console/requests/move",
            data={"_csrf_token": token, "request_id": str(overdue_id), "status": "in_progress"},
        )
        assert closed.status_code == 409
        unknown = await client.post(
            f"{console}/console/requests/move",
            data={"_csrf_token": token, "request_id": str(uuid.uuid4()), "status": "done"},
        )
        assert unknown.status_code == 404
        done_only = await client.get(f"{console}/console/requests?status=done")
        assert f"/console/subjects/{OTHER}" in done_only.text
        assert f"/console/subjects/{SUBJECT}" not in done_only.text
        bad_filter = await client.get(f"{console}/console/requests?status=lost")
        assert bad_filter.status_code == 400
    row = await db.fetchrow(
        "select status, outcome, handler from data_requests where id = $1", overdue_id
    )
    assert (row["status"], row["outcome"], row["handler"]) == (
        "done",
        "Erased after the letter.",
        "support",
    )
    event = await db.fetchrow("select actor from audit_events where action = 'data_request.done'")
    assert event["actor"] == "staff:support"
    viewed = await db.fetchval(
        "select count(*) from audit_events where action = 'console.viewed' "
        "and actor = 'staff:support' and details->>'page' = 'requests'"
    )
    assert viewed >= 2


async def test_admin_export_is_a_json_download_naming_the_reader(
    console: str, subject: str, db: asyncpg.Connection
) -> None:
    async with _staff(console, "admin") as (client, token):
        answer = await client.post(
            f"{console}/console/subjects/{subject}/export", data={"_csrf_token": token}
        )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="subject-{subject}-export.json"'
    )
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["subject_id"] == subject
    assert [r["guardian_email"] for r in body["requests"]] == [GUARDIAN]
    event = await db.fetchrow("select actor from audit_events where action = 'subject.exported'")
    assert event["actor"] == "staff:admin"


async def test_a_mistyped_subject_id_erases_nothing_and_the_typed_one_erases(
    console: str, subject: str, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    async with _staff(console, "admin") as (client, token):
        form = await client.get(f"{console}/console/subjects/{subject}/erase")
        assert form.status_code == 200
        no_reason = await client.post(
            f"{console}/console/subjects/{subject}/erase",
            data={"_csrf_token": token, "typed_subject_id": subject},
        )
        assert no_reason.status_code == 422
        mistyped = await client.post(
            f"{console}/console/subjects/{subject}/erase",
            data={
                "_csrf_token": token,
                "reason": "guardian_request",
                "typed_subject_id": "child-rights-l",
            },
        )
        assert mistyped.status_code == 422
        assert "does not match this child&#39;s. Nothing was erased." in mistyped.text
        assert (await _check(api, subject))["status"] == "pending"
        assert (
            await db.fetchval("select count(*) from audit_events where action = 'subject.erased'")
            == 0
        )
        erased = await client.post(
            f"{console}/console/subjects/{subject}/erase",
            data={
                "_csrf_token": token,
                "reason": "guardian_request",
                "typed_subject_id": subject,
            },
        )
        assert erased.status_code == 200
        assert "was erased" in erased.text
    assert (await _check(api, subject))["status"] == "none"
    tombstone = await db.fetchrow(
        "select actor, subject_id, reason from audit_events where action = 'subject.erased'"
    )
    assert (tombstone["actor"], tombstone["subject_id"]) == ("staff:admin", None)
    assert tombstone["reason"] == "guardian_request"


async def test_rectifying_the_birth_date_asks_for_confirmation_first(
    console: str, subject: str, db: asyncpg.Connection
) -> None:
    async with _staff(console, "support") as (client, token):
        bad = await client.post(
            f"{console}/console/subjects/{subject}/birth-date",
            data={"_csrf_token": token, "birth_date": "1 May 2014", "channel": "staff_email"},
        )
        assert bad.status_code == 422
        form = {"_csrf_token": token, "birth_date": "2014-05-30", "channel": "staff_phone"}
        confirm = await client.post(f"{console}/console/subjects/{subject}/birth-date", data=form)
        assert confirm.status_code == 200
        assert "Correct the birth date?" in confirm.text
        assert await db.fetchval("select count(*) from data_requests") == 0
        done = await client.post(
            f"{console}/console/subjects/{subject}/birth-date", data={**form, "confirm": "yes"}
        )
        assert done.status_code == 303
        assert done.headers["location"].endswith("?done=birth_date_corrected")
    row = await db.fetchrow("select kind, status, handler from data_requests")
    assert (row["kind"], row["status"], row["handler"]) == ("rectification", "done", "support")
    event = await db.fetchrow(
        "select actor from audit_events where action = 'subject.birth_date_corrected'"
    )
    assert event["actor"] == "staff:support"


@pytest.fixture
async def console_worker(settings_for_console: Settings) -> AsyncIterator[Worker]:
    async with worker_for(settings_for_console, ManualClock(datetime.now(UTC)), max_size=2) as w:
        yield w


async def test_a_new_guardian_address_is_confirmed_then_mailed_a_link(
    console: str,
    api: httpx.AsyncClient,
    console_worker: Worker,
    mailbox: Any,
    db: asyncpg.Connection,
) -> None:
    _, link = await request_link(
        api,
        console_worker,
        dict(api.headers),
        mailbox,
        subject_id=SUBJECT,
        email=GUARDIAN,
        birth_date="2015-04-01",
    )
    async with httpx.AsyncClient(base_url=console, timeout=10.0) as guardian:
        await grant_via_link(guardian, link)
    consent_id = (await _check(api, SUBJECT))["consent_id"]
    other_consent = str(uuid.uuid4())
    async with _staff(console, "support") as (client, token):
        page = await client.get(f"{console}/console/subjects/{SUBJECT}")
        assert f'name="consent_id" value="{consent_id}"' in page.text
        form = {
            "_csrf_token": token,
            "consent_id": consent_id,
            "email": "new.parent@example.com",
            "channel": "staff_email",
        }
        stranger = await client.post(
            f"{console}/console/subjects/{SUBJECT}/guardian-email",
            data={**form, "consent_id": other_consent, "confirm": "yes"},
        )
        assert stranger.status_code == 404
        confirm = await client.post(
            f"{console}/console/subjects/{SUBJECT}/guardian-email", data=form
        )
        assert confirm.status_code == 200
        assert "new.parent@example.com" in confirm.text
        assert await db.fetchval("select count(*) from guardian_address_changes") == 0
        done = await client.post(
            f"{console}/console/subjects/{SUBJECT}/guardian-email", data={**form, "confirm": "yes"}
        )
        assert done.status_code == 303
        # The domain's limit holds in the console too: five address changes a day.
        for number in range(4):
            again = await client.post(
                f"{console}/console/subjects/{SUBJECT}/guardian-email",
                data={**form, "email": f"parent.{number}@example.com", "confirm": "yes"},
            )
            assert again.status_code == 303
        limited = await client.post(
            f"{console}/console/subjects/{SUBJECT}/guardian-email",
            data={**form, "email": "one.more@example.com", "confirm": "yes"},
        )
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) > 0
        assert "Too many attempts for now." in limited.text
    assert await db.fetchval("select count(*) from guardian_address_changes") == 5
    event = await db.fetchrow(
        "select actor from audit_events where action = 'guardian.address_change_requested'"
    )
    assert event["actor"] == "staff:support"
