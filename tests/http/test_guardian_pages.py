"""Guardian paths answer every error with an HTML page, never problem+json: unknown paths,
wrong methods, and NUL bytes in a link or in a form field.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from service.clock import ManualClock
from tests.support.flows import ALL_PURPOSES, check, granted_consent, open_request, withdraw_csrf
from tests.support.guardian_client import csrf_token, is_html, path_of
from tests.support.problems import PROBLEM_JSON
from tests.support.service import Service
from tests.support.stored_data import request_row

SUBJECT = "child-race-1"
GUARDIAN = "race.parent@example.com"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        # /guardian is the dashboard's sign-in page: a form without its CSRF token is refused
        ("POST", "/guardian", 403),
        ("PUT", "/guardian", 405),
        ("PUT", "/guardian/withdraw/" + "a" * 43, 405),
        ("DELETE", "/guardian/" + "a" * 43, 405),
    ],
)
async def test_guardian_paths_answer_errors_with_an_html_page(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(
        method,
        path,
        data={"decision": "grant"} if method != "GET" else None,
        headers={"Accept": "application/json"},
    )
    assert response.status_code == status, response.text
    assert is_html(response), response.headers
    assert not response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.text.lstrip().startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in response.text
    assert response.headers["x-frame-options"] == "DENY"


async def test_a_nul_in_a_guardian_path_posted_to_is_an_html_page(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/guardian/a%00b", data={"decision": "grant"})
    assert 400 <= response.status_code < 500, response.text
    assert is_html(response)


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"decision": "gr\x00ant"}, 422),
        ({"decision": "grant", "purposes": ["tutor\x00ing"], "attestation": "yes"}, 422),
        ({"decision": "grant", "purposes": ALL_PURPOSES, "attestation": "y\x00es"}, 422),
        ({"deci\x00sion": "deny"}, 422),
        ({"decision": "\x00", "_csrf_token": "\x00"}, 403),
    ],
    ids=["decision", "purpose", "attestation", "field-name", "csrf"],
)
async def test_a_nul_in_a_review_form_field_is_an_html_4xx(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    form: dict[str, Any],
    status: int,
) -> None:
    request_id, link = await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    page = await svc.client.get(path_of(link))
    response = await svc.client.post(
        path_of(link), data={"_csrf_token": csrf_token(page.text), **form}
    )
    assert response.status_code == status, response.text
    assert is_html(response)
    assert (await request_row(db, uuid.UUID(request_id)))["status"] == "pending"
    assert await db.fetchval("select count(*) from consents") == 0


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"confirm": "y\x00es"}, 422),
        ({"confirm": "yes", "_csrf_token": "abc\x00def"}, 403),
    ],
    ids=["confirm", "csrf"],
)
async def test_a_nul_in_the_withdrawal_form_is_an_html_4xx(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    form: dict[str, Any],
    status: int,
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    token = await withdraw_csrf(svc.client, granted.withdraw_path)
    response = await svc.client.post(granted.withdraw_path, data={"_csrf_token": token, **form})
    assert response.status_code == status, response.text
    assert is_html(response)
    assert (await check(svc.client, api, SUBJECT))["status"] == "granted"
