"""NUL bytes and control characters in any input are refused as client errors (problem+json,
nothing stored), never a 500; an unknown locale tag with a NUL falls back to English.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from service.clock import ManualClock
from tests.support.dates import birth_date_years_ago
from tests.support.flows import granted_consent, request_body
from tests.support.problems import PROBLEM_JSON, assert_problem
from tests.support.service import Service
from tests.support.stored_data import row_counts


async def test_nul_in_the_check_query_is_a_422_problem(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.get(
        "/v1/consents/check?subject_id=a%00b&purpose=tutoring", headers=auth
    )
    assert_problem(response, 422)

    purpose = await client.get(
        "/v1/consents/check?subject_id=child-1&purpose=tutor%00ing", headers=auth
    )
    assert 400 <= purpose.status_code < 500, purpose.text
    assert purpose.headers["content-type"].startswith(PROBLEM_JSON)


@pytest.mark.parametrize("path", ["/v1/subjects/a%00b/events", "/v1/subjects/a%00b"])
async def test_nul_in_a_staff_subject_path_is_a_422_problem(svc: Service, path: str) -> None:
    response = await svc.client.get(path, headers=svc.staff("support"))
    assert_problem(response, 422)


@pytest.mark.parametrize("path", ["/guardian/a%00b", "/guardian/withdraw/a%00b"])
async def test_nul_in_a_guardian_link_is_not_a_500(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404, response.text


@pytest.mark.parametrize(
    "key",
    ["retry\x00key", "retry\x01key", "retry\x1fkey", "retry\x7fkey"],
    ids=["nul", "soh", "unit-separator", "del"],
)
async def test_idempotency_key_with_a_control_character_is_refused(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    key: str,
) -> None:
    before = await row_counts(db)
    response = await client.post(
        "/v1/consent-requests",
        json=request_body("child-idem-ctl", "idem.ctl@example.com", birth_date_years_ago(clock)),
        headers={**auth, "Idempotency-Key": key},
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert await row_counts(db) == before


async def test_revoke_reason_with_a_nul_is_refused_and_the_consent_stays(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    granted = await granted_consent(
        svc, api, mailbox, subject_id="child-nul-revoke", email="nul.revoke@example.com"
    )
    for reason in ("fraud\u0000suspected", "fraud\u0001suspected", "\u0000\u0000\u0000"):
        response = await svc.client.post(
            f"/v1/consents/{granted.consent_id}/revoke",
            json={"reason": reason},
            headers=svc.staff("support"),
        )
        assert 400 <= response.status_code < 500, (reason, response.text)
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
    consent_id = uuid.UUID(granted.consent_id)
    assert await db.fetchval("select status from consents where id = $1", consent_id) == "granted"
    assert (
        await db.fetchval("select count(*) from audit_events where action = 'consent.revoked'") == 0
    )


async def test_guardian_email_with_a_nul_is_422_and_nothing_is_stored(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    before = await row_counts(db)
    response = await client.post(
        "/v1/consent-requests",
        json=request_body("child-nul-email", "p\u0000q@example.com", birth_date_years_ago(clock)),
        headers=auth,
    )
    body = assert_problem(response, 422)
    assert "guardian_email" in body["detail"]
    assert await row_counts(db) == before


@pytest.mark.parametrize(
    "overrides",
    [
        {"subject_id": "child\u0000nul"},
        {"birth_date": "2015-04-01\u0000"},
        {"country": "S\u0000I"},
        {"purposes": ["tutoring", "news\u0000letter"]},
        {"guardian_email": "parent@exa\u0000mple.com"},
        {"guardian_email": "parent\u0007@example.com"},
    ],
    ids=["subject", "birth-date", "country", "purpose", "email-domain", "email-bell"],
)
async def test_nul_anywhere_in_a_request_body_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    overrides: dict[str, Any],
) -> None:
    before = await row_counts(db)
    body = request_body("child-nul-body", "nul.body@example.com", birth_date_years_ago(clock))
    response = await client.post("/v1/consent-requests", json={**body, **overrides}, headers=auth)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert await row_counts(db) == before


async def test_nul_in_the_locale_is_refused_and_stores_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    body = request_body("child-nul-locale", "nul.locale@example.com", birth_date_years_ago(clock))
    before = await row_counts(db)
    response = await client.post(
        "/v1/consent-requests", json={**body, "locale": "sl\u0000"}, headers=auth
    )
    # Not a language the service speaks; the NUL is neither stored nor echoed raw.
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert "\x00" not in response.json()["detail"]
    assert await row_counts(db) == before
