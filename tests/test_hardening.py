"""Regression tests for recent hardening fixes: a child coming of age while a request waits,
NUL bytes and control characters, a worker that survives an undeliverable message, outbox claim
ownership, retention of undelivered payloads, the forwarded-for rate-limit key, the API-key
cache racing a revocation, and lapses reported before the worker sweeps.

Real PostgreSQL and a real SMTP server throughout; time moves only through the ManualClock.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import asyncpg
import httpx
import pytest

from service.clock import ManualClock
from service.db.api_keys import hash_api_key, revoke_api_key
from service.db.invalidation import InvalidationListener, publish
from service.delivery import outbox
from service.dev.pgcluster import free_port
from service.http.api_key_auth import ApiKeyAuthenticator
from service.security.tokens import new_link_token
from service.settings import DAY, Settings, load_settings
from service.worker import Worker
from tests.conftest import guardian_link, make_api_key, worker_for
from tests.guardian_client import path_of, review_csrf
from tests.staff_support import (
    GRANT_ALL,
    PROBLEM_JSON,
    Service,
    assert_problem,
    bearer,
    birth_date_turning,
    birth_date_years_ago,
    create_request,
    granted_consent,
    local_midnight,
    open_request,
    request_body,
    row_counts,
    start_service,
)

NOT_REQUIRED_HEADING = "Your consent is no longer needed"
EXCEPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ---- helpers -----------------------------------------------------------------------------------


async def email_row(db: asyncpg.Connection, related_id: uuid.UUID) -> asyncpg.Record:
    row = await db.fetchrow(
        "select id, status, attempts, last_error, payload_enc, created_at from outbox "
        "where related_id = $1 and kind = 'email'",
        related_id,
    )
    assert row is not None
    return row


def fresh_minute(clock: ManualClock) -> None:
    """Start a fresh one-minute rate-limit window so every post of a test falls into it."""
    now = clock.now()
    clock.set(now.replace(second=0, microsecond=0) + timedelta(minutes=1))


# ---- 1. the child comes of age while the request is pending ------------------------------------


async def test_grant_after_the_child_came_of_age_shows_not_required_and_expires_the_request(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    email = "coming.of.age@example.com"
    birth = birth_date_turning(clock, 15, in_days=2)
    request_id = await create_request(
        client, auth, subject_id="child-of-age-1", email=email, birth_date=birth.isoformat()
    )
    assert await worker.deliver_due() == 1
    link = guardian_link(mailbox.to(email)[-1].text)
    token = await review_csrf(client, link)

    clock.advance(timedelta(days=3))  # 15 now, but the 7-day link is still valid
    expires_at = await db.fetchval(
        "select expires_at from consent_requests where id = $1", request_id
    )
    assert clock.now() < expires_at

    response = await client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token})

    assert response.status_code == 410, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert NOT_REQUIRED_HEADING in response.text
    assert "child-of-age-1" not in response.text
    row = await db.fetchrow(
        "select status, decided_at from consent_requests where id = $1", request_id
    )
    assert row is not None
    assert row["status"] == "expired"
    assert row["decided_at"] == clock.now()
    assert await db.fetchval("select count(*) from consents") == 0
    assert (
        await db.fetchval("select count(*) from outbox where topic = 'consent_confirmation'") == 0
    )
    event = await db.fetchrow(
        "select actor, from_status, to_status from audit_events "
        "where request_id = $1 and action = 'request.expired'",
        request_id,
    )
    assert event is not None
    assert (event["actor"], event["from_status"], event["to_status"]) == (
        "system",
        "pending",
        "expired",
    )
    status = await client.get(f"/v1/consent-requests/{request_id}", headers=auth)
    assert status.status_code == 200, status.text
    assert status.json()["status"] == "expired"

    # The link is used up now: a second post (or a deny) is a 410 page, never a 500.
    again = await client.post(path_of(link), data={"decision": "deny", "_csrf_token": token})
    assert again.status_code == 410, again.text
    assert await db.fetchval("select count(*) from consents") == 0
    assert (
        await db.fetchval(
            "select count(*) from audit_events where action = 'request.expired' "
            "and request_id = $1",
            request_id,
        )
        == 1
    )


async def test_concurrent_decisions_after_the_child_came_of_age_are_both_410(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    email = "coming.of.age.race@example.com"
    birth = birth_date_turning(clock, 15, in_days=2)
    request_id = await create_request(
        client, auth, subject_id="child-of-age-2", email=email, birth_date=birth.isoformat()
    )
    assert await worker.deliver_due() == 1
    link = guardian_link(mailbox.to(email)[-1].text)
    token = await review_csrf(client, link)
    clock.advance(timedelta(days=3))

    answers = await asyncio.gather(
        client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token}),
        client.post(path_of(link), data={"decision": "deny", "_csrf_token": token}),
    )

    assert [a.status_code for a in answers] == [410, 410], [a.text[:300] for a in answers]
    assert any(NOT_REQUIRED_HEADING in a.text for a in answers)
    assert await db.fetchval("select count(*) from consents") == 0
    assert (
        await db.fetchval("select status from consent_requests where id = $1", request_id)
        == "expired"
    )
    assert (
        await db.fetchval(
            "select count(*) from audit_events where action like 'request.%' "
            "and request_id = $1 and to_status <> 'pending'",
            request_id,
        )
        == 1
    )


# ---- 2. NUL bytes and control characters never 500 -----------------------------------------------


async def test_nul_in_the_check_query_is_a_400_problem(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.get(
        "/v1/consents/check?subject_id=a%00b&purpose=tutoring", headers=auth
    )
    assert_problem(response, 400)

    purpose = await client.get(
        "/v1/consents/check?subject_id=child-1&purpose=tutor%00ing", headers=auth
    )
    assert 400 <= purpose.status_code < 500, purpose.text
    assert purpose.headers["content-type"].startswith(PROBLEM_JSON)


@pytest.mark.parametrize("path", ["/v1/subjects/a%00b/events", "/v1/subjects/a%00b"])
async def test_nul_in_a_staff_subject_path_is_a_400_problem(svc: Service, path: str) -> None:
    response = await svc.client.get(path, headers=svc.staff("support"))
    assert_problem(response, 400)


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


async def test_nul_in_the_locale_falls_back_to_english_and_stores_no_nul(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    body = request_body("child-nul-locale", "nul.locale@example.com", birth_date_years_ago(clock))
    response = await client.post(
        "/v1/consent-requests", json={**body, "locale": "sl\u0000"}, headers=auth
    )
    # An unknown locale tag means English; the NUL never reaches the database.
    assert response.status_code == 201, response.text
    assert await db.fetchval("select locale from consent_requests") == "en"


# ---- 3. the worker survives a message it cannot deliver ----------------------------------------


def _prefixed(blob: bytes, _protector: Any, _item_id: uuid.UUID) -> bytes:
    return b"\x01" + blob


def _random(_blob: bytes, _protector: Any, _item_id: uuid.UUID) -> bytes:
    return os.urandom(48)


def _empty(_blob: bytes, _protector: Any, _item_id: uuid.UUID) -> bytes:
    return b""


def _not_json(_blob: bytes, protector: Any, item_id: uuid.UUID) -> bytes:
    encrypted: bytes = protector.encrypt(b"this is not json", item_id.bytes)
    return encrypted


def _wrong_shape(_blob: bytes, protector: Any, item_id: uuid.UUID) -> bytes:
    encrypted: bytes = protector.encrypt(b'{"to": 42}', item_id.bytes)
    return encrypted


Corruption = Callable[[bytes, Any, uuid.UUID], bytes]


@pytest.mark.parametrize(
    "corrupt",
    [_prefixed, _random, _empty, _not_json, _wrong_shape],
    ids=["prefixed", "random", "empty", "not-json", "wrong-shape"],
)
async def test_an_undeliverable_email_does_not_stop_the_worker(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    corrupt: Corruption,
) -> None:
    bad_email, good_email = "broken.payload@example.com", "good.payload@example.com"
    birth = birth_date_years_ago(clock)
    bad_request = await create_request(
        client, auth, subject_id="child-bad-payload", email=bad_email, birth_date=birth
    )
    clock.advance(timedelta(seconds=1))  # the broken one is due first, in the same batch
    good_request = await create_request(
        client, auth, subject_id="child-good-payload", email=good_email, birth_date=birth
    )
    bad = await email_row(db, bad_request)
    await db.execute(
        "update outbox set payload_enc = $2 where id = $1",
        bad["id"],
        corrupt(bytes(bad["payload_enc"]), worker.runtime.protector, bad["id"]),
    )

    delivered = await worker.deliver_due()

    assert delivered == 1
    assert len(mailbox.to(good_email)) == 1
    assert mailbox.to(bad_email) == []
    assert (await email_row(db, good_request))["status"] == "sent"
    failed = await email_row(db, bad_request)
    assert failed["status"] == "pending"
    assert failed["attempts"] == 1
    assert failed["last_error"]
    assert EXCEPTION_NAME.fullmatch(failed["last_error"]), failed["last_error"]
    assert bad_email not in failed["last_error"]
    assert "broken.payload" not in failed["last_error"]
    if corrupt is _prefixed:
        assert failed["last_error"] == "InvalidTag"
    # Nothing else is due now; the broken message waits for its backoff, without a loop.
    assert await worker.deliver_due() == 0
    assert (await email_row(db, bad_request))["attempts"] == 1


# ---- 4. outbox claim ownership -------------------------------------------------------------------


async def test_a_stale_claimer_cannot_mark_a_reclaimed_message(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    request_id = await create_request(
        client,
        auth,
        subject_id="child-claims",
        email="claims@example.com",
        birth_date=birth_date_years_ago(clock),
    )
    [first] = await outbox.claim_due(db, now=clock.now(), limit=10)
    assert first.related_id == request_id
    assert await outbox.claim_due(db, now=clock.now(), limit=10) == []  # leased

    clock.advance(outbox.CLAIM_LEASE + timedelta(seconds=1))
    [second] = await outbox.claim_due(db, now=clock.now(), limit=10)
    assert second.id == first.id
    assert second.attempts == first.attempts + 1

    # The first claimer wakes up late: neither its success nor its failure may count.
    await outbox.mark_sent(db, first, clock.now())
    row = await email_row(db, request_id)
    assert row["status"] == "pending"
    assert row["payload_enc"] is not None
    assert row["attempts"] == second.attempts
    await outbox.mark_failed(db, first, error="Stale", now=clock.now(), max_attempts=1)
    row = await email_row(db, request_id)
    assert row["status"] == "pending"
    assert row["last_error"] is None

    await outbox.mark_sent(db, second, clock.now())
    row = await email_row(db, request_id)
    assert row["status"] == "sent"
    assert row["payload_enc"] is None


# ---- 5. retention of undelivered payloads --------------------------------------------------------


def dead_letter_settings(base_env: dict[str, str]) -> Settings:
    """One attempt only, against an SMTP port nobody listens on; expired data kept one day."""
    return load_settings(
        {
            **base_env,
            "CONSENT_SMTP_URL": f"smtp://127.0.0.1:{free_port()}?timeout=5",
            "CONSENT_OUTBOX_MAX_ATTEMPTS": "1",
            "CONSENT_RETENTION_EXPIRED": str(DAY),
        }
    )


@pytest.fixture
async def failing_worker(base_env: dict[str, str], clock: ManualClock) -> AsyncIterator[Worker]:
    async with worker_for(dead_letter_settings(base_env), clock) as worker:
        yield worker


async def test_dead_email_keeps_its_payload_only_until_the_retention_has_passed(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    failing_worker: Worker,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    request_id = await create_request(
        client,
        auth,
        subject_id="child-dead-letter",
        email="dead.letter@example.com",
        birth_date=birth_date_years_ago(clock),
    )
    assert await failing_worker.deliver_due() == 0
    dead = await email_row(db, request_id)
    assert dead["status"] == "dead"
    assert dead["payload_enc"] is not None

    clock.set(dead["created_at"] + timedelta(days=1))  # exactly the retention: kept
    await failing_worker.sweep()
    kept = await email_row(db, request_id)
    assert kept["status"] == "dead"
    assert kept["payload_enc"] is not None

    clock.advance(timedelta(seconds=1))
    await failing_worker.sweep()
    purged = await email_row(db, request_id)
    assert purged["status"] == "dead"
    assert purged["payload_enc"] is None
    assert await db.fetchval("select payload from outbox where id = $1", dead["id"]) is None
    # Nothing is left to retry once the payload is gone.
    assert await outbox.retry_dead(db, dead["id"], clock.now()) is None
    assert (
        await db.fetchval("select status from consent_requests where id = $1", request_id)
        == "pending"
    )


@pytest.mark.parametrize("ending", ["superseded", "expired"])
async def test_a_dead_email_is_cleared_when_its_request_ends(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    failing_worker: Worker,
    worker: Worker,
    clock: ManualClock,
    db: asyncpg.Connection,
    ending: str,
) -> None:
    birth = birth_date_years_ago(clock)
    request_id = await create_request(
        client,
        auth,
        subject_id="child-dead-cancel",
        email="dead.cancel@example.com",
        birth_date=birth,
    )
    assert await failing_worker.deliver_due() == 0
    assert (await email_row(db, request_id))["status"] == "dead"

    if ending == "superseded":
        newer = await create_request(
            client,
            auth,
            subject_id="child-dead-cancel",
            email="dead.cancel.other@example.com",
            birth_date=birth,
        )
        assert (await email_row(db, newer))["payload_enc"] is not None
    else:
        # A worker with the default (30-day) retention: the expiry, not a purge, clears it.
        clock.advance(timedelta(days=7, seconds=1))
        assert (await worker.sweep())["expired_requests"] == 1

    cleared = await email_row(db, request_id)
    assert cleared["status"] == "cancelled"
    assert cleared["payload_enc"] is None


# ---- 6. the rate-limit key behind a trusted proxy ------------------------------------------------


async def _thirty_probes(
    client: httpx.AsyncClient, token: str, forwarded_for: Callable[[int], str]
) -> None:
    for i in range(30):
        probe = await client.post(
            f"/guardian/{new_link_token()}",
            data={"decision": "deny", "_csrf_token": token},
            headers={"X-Forwarded-For": forwarded_for(i)},
        )
        assert probe.status_code == 404, (i, probe.text[:200])


async def test_trusted_forwarded_for_limits_by_the_rightmost_entry(
    base_env: dict[str, str],
    clock: ManualClock,
    mailbox: Any,
    db: asyncpg.Connection,
) -> None:
    api = bearer(await make_api_key(db))
    async with start_service(base_env, clock, {"CONSENT_TRUST_FORWARDED_FOR": "true"}) as svc:
        fresh_minute(clock)
        request_id, link = await open_request(
            svc, api, mailbox, subject_id="child-xff-1", email="xff.trusted@example.com"
        )
        token = await review_csrf(svc.client, link)

        # The client forges the leftmost entries; our proxy appends the real address last.
        await _thirty_probes(svc.client, token, lambda i: f"198.18.0.{i}, 203.0.113.9")
        limited = await svc.client.post(
            path_of(link),
            data={**GRANT_ALL, "_csrf_token": token},
            headers={"X-Forwarded-For": "198.18.1.1, 203.0.113.9"},
        )
        assert limited.status_code == 429, limited.text[:300]
        assert 1 <= int(limited.headers["retry-after"]) <= 60

        # Another client behind the same proxy has a budget of its own.
        other = await svc.client.post(
            path_of(link),
            data={**GRANT_ALL, "_csrf_token": token},
            headers={"X-Forwarded-For": "203.0.113.9, 203.0.113.10"},
        )
        assert other.status_code == 200, other.text[:300]
        status = await svc.client.get(f"/v1/consent-requests/{request_id}", headers=api)
        assert status.json()["status"] == "granted"


async def test_forwarded_for_is_ignored_unless_trusted(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    settings: Settings,
) -> None:
    assert settings.trust_forwarded_for is False
    fresh_minute(clock)
    email = "xff.untrusted@example.com"
    request_id = await create_request(
        client, auth, subject_id="child-xff-2", email=email, birth_date=birth_date_years_ago(clock)
    )
    assert await worker.deliver_due() == 1
    link = guardian_link(mailbox.to(email)[-1].text)
    token = await review_csrf(client, link)

    await _thirty_probes(client, token, lambda i: f"198.18.2.{i}")
    limited = await client.post(
        path_of(link),
        data={**GRANT_ALL, "_csrf_token": token},
        headers={"X-Forwarded-For": "198.18.3.1, 203.0.113.77"},
    )
    assert limited.status_code == 429, limited.text[:300]
    status = await client.get(f"/v1/consent-requests/{request_id}", headers=auth)
    assert status.json()["status"] == "pending"


# ---- 7. the API-key cache and revocation notices -------------------------------------------------


async def _until(predicate: Callable[[], bool], what: str) -> None:
    """Bounded wait for a background event (a NOTIFY); not a timing assertion."""
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.025)
    pytest.fail(f"gave up waiting: {what}")


@pytest.fixture
async def listener(database_url: str) -> AsyncIterator[InvalidationListener]:
    started = InvalidationListener(database_url)
    started.start()
    try:
        await _until(lambda: started.healthy, "the invalidation listener to connect")
        yield started
    finally:
        await started.stop()


@pytest.fixture
async def auth_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


def _notices(listener: InvalidationListener) -> list[str]:
    seen: list[str] = []
    listener.subscribe(seen.append)
    return seen


async def _revoke_and_publish(db: asyncpg.Connection, key: str) -> None:
    key_id = await db.fetchval("select id from api_keys where key_hash = $1", hash_api_key(key))
    async with db.transaction():
        assert await revoke_api_key(db, key_id, datetime.now(UTC))
        await publish(db, "api_keys")


async def test_a_revocation_notice_evicts_a_cached_key(
    auth_pool: asyncpg.Pool, listener: InvalidationListener, db: asyncpg.Connection
) -> None:
    authenticator = ApiKeyAuthenticator(auth_pool, listener)
    seen = _notices(listener)
    key = await make_api_key(db, "consent:check")
    found = await authenticator.authenticate(key)
    assert found is not None
    assert hash_api_key(key) in authenticator._cache  # cached

    await _revoke_and_publish(db, key)
    await _until(lambda: "api_keys" in seen, "the api_keys notice")

    assert await authenticator.authenticate(key) is None


class _HookAfterQuery:
    """The real pool; once, after the lookup's query and before the result is cached, run a
    hook (a real revocation with its real NOTIFY through the real listener)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.hook: Callable[[], Coroutine[Any, Any, None]] | None = None

    def acquire(self) -> _HookedAcquire:
        hook, self.hook = self.hook, None
        return _HookedAcquire(self._pool.acquire(), hook)


class _HookedAcquire:
    def __init__(self, inner: Any, hook: Callable[[], Coroutine[Any, Any, None]] | None) -> None:
        self._inner = inner
        self._hook = hook

    async def __aenter__(self) -> asyncpg.Connection:
        connection: asyncpg.Connection = await self._inner.__aenter__()
        return connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, traceback)
        if self._hook is not None and exc_type is None:
            await self._hook()


class _RacingAuthenticator(ApiKeyAuthenticator):
    def __init__(self, pool: asyncpg.Pool, listener: InvalidationListener) -> None:
        super().__init__(pool, listener)
        self.hooked = _HookAfterQuery(pool)
        self._pool = self.hooked  # type: ignore[assignment]


async def test_a_revocation_arriving_during_a_lookup_is_not_cached_back(
    auth_pool: asyncpg.Pool, listener: InvalidationListener, db: asyncpg.Connection
) -> None:
    authenticator = _RacingAuthenticator(auth_pool, listener)
    seen = _notices(listener)
    key = await make_api_key(db, "consent:check")

    async def revoke_while_in_flight() -> None:
        await _revoke_and_publish(db, key)
        await _until(lambda: "api_keys" in seen, "the api_keys notice")

    authenticator.hooked.hook = revoke_while_in_flight
    in_flight = await authenticator.authenticate(key)
    # The lookup read the row before the revocation committed; answering with it once is
    # unavoidable, keeping it is not.
    assert in_flight is not None
    assert "api_keys" in seen
    assert hash_api_key(key) not in authenticator._cache

    assert await authenticator.authenticate(key) is None


async def test_the_generation_counter_guards_the_cache_directly(
    auth_pool: asyncpg.Pool, listener: InvalidationListener, db: asyncpg.Connection
) -> None:
    authenticator = _RacingAuthenticator(auth_pool, listener)
    key = await make_api_key(db, "consent:check")

    async def invalidate() -> None:
        authenticator._invalidate("api_keys")

    authenticator.hooked.hook = invalidate
    assert await authenticator.authenticate(key) is not None
    assert hash_api_key(key) not in authenticator._cache
    # Without an invalidation in between, the next lookup is cached as usual.
    assert await authenticator.authenticate(key) is not None
    assert hash_api_key(key) in authenticator._cache


# ---- 8. lapses are reported before the worker sweeps ---------------------------------------------


async def test_a_pending_request_past_its_expiry_reads_expired_before_the_sweep(
    svc: Service, api: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    request_id = await create_request(
        svc.client,
        api,
        subject_id="child-overdue",
        email="overdue@example.com",
        birth_date=birth_date_years_ago(clock),
    )
    expires_at = await db.fetchval(
        "select expires_at from consent_requests where id = $1", request_id
    )

    clock.set(expires_at - timedelta(seconds=1))
    before = await svc.client.get(f"/v1/consent-requests/{request_id}", headers=api)
    assert before.json()["status"] == "pending"

    clock.set(expires_at)
    overdue = await svc.client.get(f"/v1/consent-requests/{request_id}", headers=api)
    assert overdue.status_code == 200, overdue.text
    assert overdue.json()["status"] == "expired"
    assert (
        await db.fetchval("select status from consent_requests where id = $1", request_id)
        == "pending"
    )

    assert (await svc.worker.sweep())["expired_requests"] == 1
    swept = await svc.client.get(f"/v1/consent-requests/{request_id}", headers=api)
    assert swept.json()["status"] == "expired"


async def test_a_lapsed_unswept_consent_reads_expired_without_a_token_and_cannot_be_revoked(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    birth = birth_date_turning(clock, 15, in_days=10)
    granted = await granted_consent(
        svc,
        api,
        mailbox,
        subject_id="child-lapse-unswept",
        email="lapse.unswept@example.com",
        birth_date=birth.isoformat(),
    )
    lapse = local_midnight(birth.replace(year=birth.year + 15))
    live = await svc.client.get(f"/v1/consents/{granted.consent_id}", headers=api)
    assert live.json()["status"] == "granted"
    assert live.json()["token"]

    clock.set(lapse)
    for headers in (api, svc.staff("support")):
        record = await svc.client.get(f"/v1/consents/{granted.consent_id}", headers=headers)
        assert record.status_code == 200, record.text
        assert record.json()["status"] == "expired"
        assert record.json()["token"] is None
    consent_id = uuid.UUID(granted.consent_id)
    assert await db.fetchval("select status from consents where id = $1", consent_id) == "granted"

    revoked = await svc.client.post(
        f"/v1/consents/{granted.consent_id}/revoke",
        json={"reason": "Too late for this, the consent has lapsed"},
        headers=svc.staff("support"),
    )
    body = assert_problem(revoked, 409)
    assert body["current_status"] == "expired"
    assert await db.fetchval("select status from consents where id = $1", consent_id) == "granted"
    assert (
        await db.fetchval("select count(*) from audit_events where action = 'consent.revoked'") == 0
    )

    assert (await svc.worker.sweep())["lapsed_consents"] == 1
    after = await svc.client.post(
        f"/v1/consents/{granted.consent_id}/revoke",
        json={"reason": "Too late for this, the consent has lapsed"},
        headers=svc.staff("support"),
    )
    assert assert_problem(after, 409)["current_status"] == "expired"
