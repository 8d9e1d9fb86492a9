"""POST /v1/consent-requests: shape, not-required children, idempotency, limits, supersede,
stored-data minimum, input validation and the guardian's language."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from service.clock import ManualClock
from service.worker import Worker
from tests.support.flows import ALL_PURPOSES
from tests.support.guardian_client import guardian_link, open_and_submit, path_of
from tests.support.stored_data import NOTHING_STORED, PERSONAL_TABLES, REQUEST_TABLES, row_counts

GUARDIAN = "Parent.Requests@Example.COM"
GUARDIAN_NORMALIZED = "Parent.Requests@example.com"


def born(
    clock: ManualClock, years: int, *, zone: str = "Europe/Ljubljana", margin: int = 30
) -> str:
    """A birth date making the child `years` old (a month past the birthday) in `zone`."""
    today = clock.now().astimezone(ZoneInfo(zone)).date() - timedelta(days=margin)
    if (today.month, today.day) == (2, 29):
        today -= timedelta(days=1)
    return today.replace(year=today.year - years).isoformat()


def child(clock: ManualClock, **overrides: Any) -> dict[str, Any]:
    return {
        "subject_id": "child-requests-1",
        "birth_date": born(clock, 10),
        "country": "SI",
        "guardian_email": GUARDIAN,
        "purposes": ALL_PURPOSES,
        **overrides,
    }


async def create(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    body: dict[str, Any],
    *,
    key: str | None = None,
) -> httpx.Response:
    headers = {**auth, **({"Idempotency-Key": key} if key else {})}
    return await client.post("/v1/consent-requests", json=body, headers=headers)


def assert_problem(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    assert isinstance(body["detail"], str)
    assert body["detail"].strip()
    return body


# ---- the happy path's shape -----------------------------------------------------------------


async def test_created_request_body_shape(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    response = await create(client, auth, child(clock))

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "subject_id", "status", "expires_at", "handoff"}
    assert uuid.UUID(body["id"])
    assert body["subject_id"] == "child-requests-1"
    assert body["status"] == "pending"
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert expires_at.utcoffset() == timedelta(0)
    assert expires_at == clock.now() + timedelta(days=7)
    row = await db.fetchrow(
        "select status, subject_id, expires_at from consent_requests where id = $1",
        uuid.UUID(body["id"]),
    )
    assert row is not None
    assert (row["status"], row["subject_id"], row["expires_at"]) == (
        "pending",
        "child-requests-1",
        expires_at,
    )


async def test_child_old_enough_needs_no_consent_and_nothing_is_stored(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    worker: Worker,
    mailbox: Any,
) -> None:
    response = await create(
        client, auth, child(clock, birth_date=born(clock, 15)), key="signup-old-enough"
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "not_required"
    assert body["subject_id"] == "child-requests-1"
    assert "id" not in body
    assert await row_counts(db, REQUEST_TABLES) == NOTHING_STORED
    assert await worker.deliver_due() == 0
    assert mailbox.messages == []


async def test_us_child_of_fourteen_still_needs_consent_under_the_operator_minimum(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    response = await create(
        client,
        auth,
        child(clock, country="US", birth_date=born(clock, 14, zone="Pacific/Honolulu")),
    )

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"
    row = await db.fetchrow(
        "select country, age_of_consent, basis from consent_requests where id = $1",
        uuid.UUID(response.json()["id"]),
    )
    assert row is not None
    assert (row["country"], row["age_of_consent"]) == ("US", 15)
    assert "operator" in row["basis"]


# ---- idempotency ----------------------------------------------------------------------------


async def test_idempotent_retry_returns_the_same_response_and_sends_one_email(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    worker: Worker,
    mailbox: Any,
) -> None:
    body = child(clock)
    first = await create(client, auth, body, key="signup-123")
    clock.advance(timedelta(seconds=5))
    retry = await create(client, auth, body, key="signup-123")

    assert first.status_code == retry.status_code == 201
    # the same answer, but for the handoff code: only its hash is kept, so a new one replaces it
    assert {**retry.json(), "handoff": None} == {**first.json(), "handoff": None}
    assert retry.json()["handoff"]["code"] != first.json()["handoff"]["code"]
    assert await db.fetchval("select count(*) from consent_requests") == 1
    assert (
        await db.fetchval("select count(*) from audit_events where action = 'request.created'") == 1
    )
    assert await worker.deliver_due() == 1
    assert len(mailbox.to(GUARDIAN_NORMALIZED)) == 1


async def test_same_idempotency_key_with_another_body_is_409(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    first = await create(client, auth, child(clock), key="signup-456")
    assert first.status_code == 201

    other = await create(client, auth, child(clock, purposes=["tutoring"]), key="signup-456")

    assert_problem(other, 409)
    assert await db.fetchval("select count(*) from consent_requests") == 1
    assert (
        await db.fetchval(
            "select status from consent_requests where id = $1", uuid.UUID(first.json()["id"])
        )
        == "pending"
    )


async def test_concurrent_retries_with_one_idempotency_key_create_one_request(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    body = child(clock)
    responses = await asyncio.gather(
        *(create(client, auth, body, key="signup-race") for _ in range(4))
    )

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await db.fetchval("select count(*) from consent_requests") == 1
    assert await db.fetchval("select count(*) from outbox") == 1


# ---- limits ---------------------------------------------------------------------------------


async def test_sixth_request_for_one_guardian_in_24_hours_is_429_until_the_window_passes(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    spellings = [GUARDIAN, GUARDIAN_NORMALIZED, "Parent.Requests@EXAMPLE.com"]
    for n in range(5):
        created = await create(
            client,
            auth,
            child(clock, subject_id=f"sibling-{n}", guardian_email=spellings[n % 3]),
        )
        assert created.status_code == 201, created.text
        clock.advance(timedelta(hours=1))

    refused = await create(client, auth, child(clock, subject_id="sibling-5"))

    assert_problem(refused, 429)
    retry_after = int(refused.headers["retry-after"])
    assert retry_after == int(timedelta(hours=24 - 5).total_seconds())
    assert await db.fetchval("select count(*) from consent_requests") == 5

    clock.advance(timedelta(seconds=retry_after - 1))
    still = await create(client, auth, child(clock, subject_id="sibling-5"))
    assert_problem(still, 429)

    clock.advance(timedelta(seconds=1))
    allowed = await create(client, auth, child(clock, subject_id="sibling-5"))
    assert allowed.status_code == 201, allowed.text

    # A different guardian was never limited.
    other = await create(
        client, auth, child(clock, subject_id="sibling-6", guardian_email="other@example.com")
    )
    assert other.status_code == 201, other.text


async def test_new_request_supersedes_the_pending_one(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    worker: Worker,
    mailbox: Any,
) -> None:
    first = await create(client, auth, child(clock))
    assert first.status_code == 201
    assert await worker.deliver_due() == 1
    [first_email] = mailbox.to(GUARDIAN_NORMALIZED)
    first_link = guardian_link(first_email.text)
    clock.advance(timedelta(minutes=10))

    second = await create(client, auth, child(clock, guardian_email="second@example.com"))

    assert second.status_code == 201, second.text
    first_status = await client.get(f"/v1/consent-requests/{first.json()['id']}", headers=auth)
    assert first_status.json()["status"] == "cancelled"
    assert (
        await db.fetchval(
            "select count(*) from consent_requests where subject_id = $1 and status = 'pending'",
            "child-requests-1",
        )
        == 1
    )
    assert (
        await db.fetchval(
            "select count(*) from audit_events where action = 'request.superseded' "
            "and request_id = $1",
            uuid.UUID(first.json()["id"]),
        )
        == 1
    )
    dead = await client.get(path_of(first_link))
    assert dead.status_code == 410
    assert 'name="attestation"' not in dead.text

    assert await worker.deliver_due() == 1
    [second_email] = mailbox.to("second@example.com")
    granted = await open_and_submit(
        client,
        guardian_link(second_email.text),
        {"decision": "grant", "purposes": ["tutoring"], "attestation": "yes"},
    )
    assert granted.status_code == 200, granted.text
    check = await client.get(
        "/v1/consents/check",
        params={"subject_id": "child-requests-1", "purpose": "tutoring"},
        headers=auth,
    )
    assert check.json()["allowed"] is True


async def test_superseded_request_email_not_yet_sent_is_never_sent(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Any,
) -> None:
    assert (await create(client, auth, child(clock))).status_code == 201
    second = await create(client, auth, child(clock, guardian_email="second@example.com"))
    assert second.status_code == 201

    assert await worker.deliver_due() == 1
    assert mailbox.to(GUARDIAN_NORMALIZED) == []
    assert len(mailbox.to("second@example.com")) == 1


# ---- data minimum ---------------------------------------------------------------------------


def _contains(value: Any, needles: list[str]) -> bool:
    if value is None:
        return False
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return any(n.encode() in raw or n.lower().encode() in raw.lower() for n in needles)
    if isinstance(value, list | tuple):
        return any(_contains(item, needles) for item in value)
    if isinstance(value, dict):
        return any(_contains(item, needles) for item in value.values())
    text = str(value).lower()
    return any(n.lower() in text for n in needles)


async def assert_not_stored(db: asyncpg.Connection, needles: list[str]) -> None:
    for table in PERSONAL_TABLES:
        for row in await db.fetch(f"select * from {table}"):
            for column, value in row.items():
                assert not _contains(value, needles), f"{table}.{column} holds personal data"


async def test_guardian_email_and_link_token_are_never_stored_in_plaintext(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    worker: Worker,
    mailbox: Any,
) -> None:
    needles = [GUARDIAN, GUARDIAN_NORMALIZED, "parent.requests"]
    created = await create(client, auth, child(clock), key="signup-data-minimum")
    assert created.status_code == 201
    row = await db.fetchrow("select guardian_email_enc, guardian_email_hash from consent_requests")
    assert row is not None
    assert row["guardian_email_enc"]
    assert row["guardian_email_hash"]
    await assert_not_stored(db, needles)

    assert await worker.deliver_due() == 1
    [message] = mailbox.to(GUARDIAN_NORMALIZED)
    link = guardian_link(message.text)
    link_token = link.rsplit("/", 1)[1]
    await assert_not_stored(db, [*needles, link_token])

    granted = await open_and_submit(
        client, link, {"decision": "grant", "purposes": ALL_PURPOSES, "attestation": "yes"}
    )
    assert granted.status_code == 200, granted.text
    await assert_not_stored(db, [*needles, link_token])


@pytest.mark.parametrize("decision", ["grant", "deny"])
async def test_birth_date_is_dropped_after_the_decision(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    worker: Worker,
    mailbox: Any,
    decision: str,
) -> None:
    body = child(clock)
    created = await create(client, auth, body)
    request_id = uuid.UUID(created.json()["id"])
    pending = await db.fetchrow(
        "select birth_date, consent_required_until from consent_requests where id = $1",
        request_id,
    )
    assert pending is not None
    assert pending["birth_date"] == date.fromisoformat(body["birth_date"])

    assert await worker.deliver_due() == 1
    [message] = mailbox.to(GUARDIAN_NORMALIZED)
    result = await open_and_submit(
        client,
        guardian_link(message.text),
        {"decision": decision, "purposes": ALL_PURPOSES, "attestation": "yes"},
    )
    assert result.status_code == 200, result.text

    decided = await db.fetchrow(
        "select status, birth_date, consent_required_until from consent_requests where id = $1",
        request_id,
    )
    assert decided is not None
    assert decided["status"] == ("granted" if decision == "grant" else "denied")
    assert decided["birth_date"] is None
    # The day the child reaches the age of consent is all that is kept.
    assert decided["consent_required_until"] == pending["consent_required_until"]
    await assert_birth_date_nowhere(db, body["birth_date"])


async def assert_birth_date_nowhere(db: asyncpg.Connection, birth_date: str) -> None:
    needle = date.fromisoformat(birth_date)
    for table in PERSONAL_TABLES:
        for row in await db.fetch(f"select * from {table}"):
            for column, value in row.items():
                assert value != needle, f"{table}.{column} still holds the birth date"
                assert not _contains(value, [birth_date]), f"{table}.{column} holds it as text"


# ---- validation -----------------------------------------------------------------------------


def _far_future(clock: ManualClock) -> str:
    return (clock.now() + timedelta(days=3)).date().isoformat()


def _too_old(clock: ManualClock) -> str:
    today = clock.now().date()
    return date(today.year - 121, 1, 1).isoformat()


BAD_INPUTS: dict[str, Any] = {
    "invalid email": {"guardian_email": "not-an-email"},
    "email with two at signs": {"guardian_email": "a@b@example.com"},
    "unknown country XX": {"country": "XX"},
    "UK is not ISO": {"country": "UK"},
    "future birth date": {"birth_date": _far_future},
    "not a real date": {"birth_date": "2023-02-30"},
    "not ISO format": {"birth_date": "1.4.2015"},
    "more than 120 years ago": {"birth_date": _too_old},
    "unknown purpose": {"purposes": ["tutoring", "marketing"]},
    "missing required purpose": {"purposes": ["newsletter"]},
    "empty purposes": {"purposes": []},
    "purposes as a string": {"purposes": "tutoring"},
    "subject_id too long": {"subject_id": "c" * 129},
    "subject_id with spaces": {"subject_id": "child 42"},
    "empty subject_id": {"subject_id": ""},
    "unknown field": {"child_name": "Ana"},
    "birth_date as a number": {"birth_date": 20150401},
    # (guardian_email may be left out: the handoff then reaches the parent)
    "missing purposes": {"purposes": None},
}

# The date rules in jurisdictions.md name the status: 422.
EXACTLY_422 = {"future birth date", "not a real date", "more than 120 years ago"}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
async def test_bad_input_is_a_problem_and_writes_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    case: str,
) -> None:
    body = child(clock)
    for field, value in BAD_INPUTS[case].items():
        if value is None:
            body.pop(field)
        else:
            body[field] = value(clock) if callable(value) else value

    response = await create(client, auth, body, key=f"bad-{case}")

    if case in EXACTLY_422:
        assert_problem(response, 422)
    else:
        assert_problem(response, 400, 422)
    assert await row_counts(db, REQUEST_TABLES) == NOTHING_STORED


async def test_body_that_is_not_json_is_a_400_problem(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    response = await client.post(
        "/v1/consent-requests",
        content=b"{not json",
        headers={**auth, "Content-Type": "application/json"},
    )
    assert_problem(response, 400)
    assert await row_counts(db, REQUEST_TABLES) == NOTHING_STORED


async def test_request_needs_the_consent_request_scope(
    client: httpx.AsyncClient, clock: ManualClock, db: asyncpg.Connection
) -> None:
    from tests.support.credentials import make_api_key

    check_only = await make_api_key(db, "consent:check", name="checker")
    forbidden = await create(client, {"Authorization": f"Bearer {check_only}"}, child(clock))
    anonymous = await create(client, {}, child(clock))

    assert_problem(forbidden, 403)
    assert_problem(anonymous, 401)
    assert await row_counts(db, REQUEST_TABLES) == NOTHING_STORED


# ---- language -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "language", "subject_words", "purpose_title"),
    [
        ("sl-SI", "sl", "potrebujemo vaše soglasje", "Inštrukcije"),
        ("sl", "sl", "potrebujemo vaše soglasje", "Inštrukcije"),
        ("en-GB", "en", "your consent is needed", "Tutoring"),
        (None, "en", "your consent is needed", "Tutoring"),
    ],
)
async def test_email_language_follows_the_locale(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Any,
    requested: str | None,
    language: str,
    subject_words: str,
    purpose_title: str,
) -> None:
    body = child(clock) if requested is None else child(clock, locale=requested)
    created = await create(client, auth, body)
    assert created.status_code == 201, created.text

    assert await worker.deliver_due() == 1
    [message] = mailbox.to(GUARDIAN_NORMALIZED)
    parsed = message_from_bytes(message.raw, policy=email_policy.default)
    assert parsed["Content-Language"] == language
    assert subject_words in message.subject
    assert purpose_title in message.text
    assert purpose_title in message.html
    # The operator name contains "Tutoring"; another purpose's title tells the languages apart.
    other_language = "Progress reports" if language == "sl" else "Poročila o napredku"
    assert other_language not in message.text
    assert other_language not in message.html

    page = await client.get(path_of(guardian_link(message.text)))
    assert page.status_code == 200
    assert f'<html lang="{language}">' in page.text
    assert purpose_title in page.text


@pytest.mark.parametrize("requested", ["ja", "pt-BR", "", "sl,en", "x" * 35])
async def test_a_language_the_service_does_not_speak_is_refused(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    requested: str,
) -> None:
    refused = await create(client, auth, child(clock, locale=requested))

    assert_problem(refused, 422)
    detail = refused.json()["detail"]
    assert detail.startswith("locale: ")
    assert "supported: en, de, es, fr, hr, hu, it, sl" in detail
    assert await row_counts(db, REQUEST_TABLES) == NOTHING_STORED
