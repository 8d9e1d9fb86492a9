"""The check endpoint, the consent token's lifetime, and the lapse and expiry sweeps.

Time moves only through the ManualClock; the worker's sweep is called explicitly.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any

import asyncpg
import httpx
import jwt

from service.clock import ManualClock
from service.worker import Worker
from tests.support.credentials import make_api_key
from tests.support.dates import birth_date_turning, local_midnight
from tests.support.flows import ALL_PURPOSES, create_request, request_body
from tests.support.guardian_client import guardian_link, open_and_submit, path_of

SUBJECT = "child-lapse-1"
GUARDIAN = "lapse.guardian@example.com"


async def check(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    subject_id: str = SUBJECT,
    purpose: str = "tutoring",
) -> httpx.Response:
    return await client.get(
        "/v1/consents/check", params={"subject_id": subject_id, "purpose": purpose}, headers=headers
    )


async def answer(
    client: httpx.AsyncClient, auth: dict[str, str], purpose: str = "tutoring"
) -> dict[str, Any]:
    response = await check(client, auth, purpose=purpose)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def grant(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    birth_date: date,
    purposes: list[str] = ALL_PURPOSES,
) -> str:
    """Open a request for a Slovenian child, let the guardian grant it; return the request id."""
    request_id = await create_request(
        client, auth, subject_id=SUBJECT, email=GUARDIAN, birth_date=birth_date.isoformat()
    )
    assert await worker.deliver_due() == 1
    [message] = mailbox.to(GUARDIAN)
    result = await open_and_submit(
        client,
        guardian_link(message.text),
        {"decision": "grant", "purposes": purposes, "attestation": "yes"},
    )
    assert result.status_code == 200, result.text
    return str(request_id)


async def verified_claims(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    jwks = (await client.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks["keys"] if k["kid"] == kid)
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["EdDSA"],
        audience="consent-clients",
        issuer="http://consent.test",
        options={"verify_exp": False, "verify_iat": False},
    )
    return claims


# ---- the check answer -----------------------------------------------------------------------


async def test_unknown_subject_is_none_and_not_allowed(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = await answer(client, auth)
    assert body == {
        "subject_id": SUBJECT,
        "purpose": "tutoring",
        "allowed": False,
        "status": "none",
        "consent_id": None,
        "expires_at": None,
        "token": None,
    }


async def test_check_needs_the_consent_check_scope(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    request_only = await make_api_key(db, "consent:request", name="signup-only")
    check_only = await make_api_key(db, "consent:check", name="checker")

    forbidden = await check(client, {"Authorization": f"Bearer {request_only}"})
    anonymous = await check(client, {})
    bogus = await check(client, {"Authorization": "Bearer not-a-key"})
    allowed = await check(client, {"Authorization": f"Bearer {check_only}"})

    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("application/problem+json")
    assert "consent:check" in forbidden.json()["detail"]
    assert anonymous.status_code == 401
    assert bogus.status_code == 401
    assert allowed.status_code == 200
    assert allowed.json()["status"] == "none"


async def test_check_of_an_unknown_purpose_is_422(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await check(client, auth, purpose="marketing")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_granted_subject_gets_a_verifiable_token(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
) -> None:
    await grant(
        client,
        auth,
        worker,
        mailbox,
        birth_date_turning(clock, 15, in_days=400),
        purposes=["tutoring", "progress_reports"],
    )

    body = await answer(client, auth)
    assert body["status"] == "granted"
    assert body["allowed"] is True
    assert body["consent_id"]
    assert body["token"]
    claims = await verified_claims(client, body["token"])
    assert claims["sub"] == SUBJECT
    assert claims["jti"] == body["consent_id"]
    assert claims["purposes"] == ["tutoring", "progress_reports"]
    assert claims["iat"] == int(clock.now().timestamp())

    refused = await answer(client, auth, purpose="newsletter")
    assert refused["status"] == "granted"
    assert refused["allowed"] is False


# ---- lapse on the day the child reaches the age of consent ---------------------------------


async def test_consent_lapses_at_local_midnight_of_the_fifteenth_birthday(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    birth = birth_date_turning(clock, 15, in_days=100)
    fifteenth = birth.replace(year=birth.year + 15)
    lapse = local_midnight(fifteenth)
    assert lapse.time() != time(0)  # Ljubljana midnight is not UTC midnight
    await grant(client, auth, worker, mailbox, birth)

    granted = await answer(client, auth)
    assert datetime.fromisoformat(granted["expires_at"]) == lapse
    consent_id = uuid.UUID(granted["consent_id"])

    clock.set(lapse - timedelta(seconds=1))
    assert (await worker.sweep())["lapsed_consents"] == 0
    still = await answer(client, auth)
    assert still["status"] == "granted"
    assert still["allowed"] is True

    clock.set(lapse)
    lapsed = await answer(client, auth)  # before any sweep
    assert lapsed["status"] == "expired"
    assert lapsed["allowed"] is False
    assert lapsed["token"] is None
    assert await db.fetchval("select status from consents where id = $1", consent_id) == "granted"

    assert (await worker.sweep())["lapsed_consents"] == 1
    row = await db.fetchrow("select status, ended_at from consents where id = $1", consent_id)
    assert row is not None
    assert row["status"] == "expired"
    assert row["ended_at"] == lapse
    event = await db.fetchrow(
        "select actor, from_status, to_status from audit_events "
        "where consent_id = $1 and action = 'consent.expired'",
        consent_id,
    )
    assert event is not None
    assert (event["actor"], event["from_status"], event["to_status"]) == (
        "system",
        "granted",
        "expired",
    )
    after = await answer(client, auth)
    assert after["status"] == "expired"
    assert after["allowed"] is False
    assert (await worker.sweep())["lapsed_consents"] == 0  # swept once only
    assert (
        await db.fetchval("select count(*) from audit_events where action = 'consent.expired'") == 1
    )


async def test_token_expires_at_the_lapse_when_it_comes_within_the_maximum_validity(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    birth = birth_date_turning(clock, 15, in_days=100)
    await grant(client, auth, worker, mailbox, birth)

    body = await answer(client, auth)
    claims = await verified_claims(client, body["token"])
    lapse = local_midnight(birth.replace(year=birth.year + 15))
    assert claims["exp"] == int(lapse.timestamp())
    stored = await db.fetchval("select expires_at from consents")
    assert stored == lapse


async def test_token_expires_at_the_maximum_validity_when_the_lapse_is_further_away(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    birth = birth_date_turning(clock, 15, in_days=2 * 365 + 40)
    granted_at = clock.now()
    await grant(client, auth, worker, mailbox, birth)

    body = await answer(client, auth)
    claims = await verified_claims(client, body["token"])
    max_validity_end = granted_at + timedelta(days=365)
    assert claims["exp"] == int(max_validity_end.timestamp())
    assert datetime.fromisoformat(body["expires_at"]) == max_validity_end
    assert await db.fetchval("select expires_at from consents") == max_validity_end

    clock.set(max_validity_end)
    assert (await answer(client, auth))["status"] == "expired"
    assert (await worker.sweep())["lapsed_consents"] == 1


# ---- pending requests expire ----------------------------------------------------------------


async def test_unanswered_request_expires_and_the_guardian_address_is_deleted(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    birth = birth_date_turning(clock, 15, in_days=900)
    created = await client.post(
        "/v1/consent-requests",
        json=request_body(SUBJECT, GUARDIAN, birth.isoformat(), purposes=["tutoring"]),
        headers=auth,
    )
    assert created.status_code == 201, created.text
    request_id = uuid.UUID(created.json()["id"])
    expires_at = datetime.fromisoformat(created.json()["expires_at"])
    assert await worker.deliver_due() == 1
    link = guardian_link(mailbox.to(GUARDIAN)[0].text)

    clock.set(expires_at - timedelta(seconds=1))
    assert (await worker.sweep())["expired_requests"] == 0
    assert await db.fetchval(
        "select guardian_email_enc is not null from consent_requests where id = $1", request_id
    )

    clock.set(expires_at + timedelta(seconds=1))
    assert (await answer(client, auth))["status"] == "expired"  # even before the sweep
    assert (await worker.sweep())["expired_requests"] == 1

    row = await db.fetchrow(
        "select status, guardian_email_enc, guardian_email_hash, birth_date "
        "from consent_requests where id = $1",
        request_id,
    )
    assert row is not None
    assert row["status"] == "expired"
    assert row["guardian_email_enc"] is None
    assert row["guardian_email_hash"] is None
    assert row["birth_date"] is None
    assert (
        await db.fetchval(
            "select count(*) from audit_events "
            "where request_id = $1 and action = 'request.expired'",
            request_id,
        )
        == 1
    )
    status = await client.get(f"/v1/consent-requests/{request_id}", headers=auth)
    assert status.json()["status"] == "expired"
    body = await answer(client, auth)
    assert body["status"] == "expired"
    assert body["allowed"] is False
    page = await client.get(path_of(link))
    assert page.status_code == 410
    assert "This link has expired" in page.text


async def test_expired_request_with_undelivered_email_sends_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    birth = birth_date_turning(clock, 15, in_days=900)
    created = await client.post(
        "/v1/consent-requests",
        json=request_body(SUBJECT, GUARDIAN, birth.isoformat(), purposes=["tutoring"]),
        headers=auth,
    )
    assert created.status_code == 201, created.text
    clock.set(datetime.fromisoformat(created.json()["expires_at"]))

    assert (await worker.sweep())["expired_requests"] == 1
    assert await worker.deliver_due() == 0
    assert mailbox.messages == []
    row = await db.fetchrow("select status, payload_enc from outbox")
    assert row is not None
    assert row["status"] == "cancelled"
    assert row["payload_enc"] is None
