"""The check cache across replicas: two app instances on one database, each with its own cache
and listener. A change made through one reaches the other by its notice; a replica whose
listener is down reads the database; a read racing a change never keeps the old row; time
needs no notice; the cache holds at most CONSENT_CHECK_CACHE_SIZE subjects."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest

from service.clock import ManualClock
from service.db import invalidation
from service.db.cache import InvalidatedCache
from service.db.check_cache import CheckRows
from service.db.consents import CheckRow
from service.db.invalidation import InvalidationListener
from service.settings import ConfigError, load_settings
from tests.support.credentials import StaffKeys
from tests.support.flows import check, create_request, granted_consent
from tests.support.service import Service, start_service

GUARDIAN = "Cache.Parent@Example.com"
SUBJECT = "child-cache-1"


async def _until(predicate: Callable[[], bool], what: str) -> None:
    """Poll a background event (a notice, a reconnect) with a bounded deadline; no timing
    assertion: only giving up is a failure."""
    for _ in range(600):
        if predicate():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


def _cache(svc: Service) -> InvalidatedCache[str, CheckRow]:
    check_rows: CheckRows = svc.app.state.check_rows
    return check_rows.cache


def _listener(svc: Service) -> InvalidationListener:
    listener: InvalidationListener = svc.app.state.listener
    return listener


async def _listening(*services: Service) -> None:
    await _until(lambda: all(_listener(s).healthy for s in services), "the listeners to connect")


@asynccontextmanager
async def _replicas(
    base_env: dict[str, str],
    clock: ManualClock,
    staff_keys: StaffKeys,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[tuple[Service, Service]]:
    env = {**staff_keys.env(), **(extra_env or {})}
    async with (
        start_service(base_env, clock, env) as first,
        start_service(base_env, clock, env) as second,
    ):
        await _listening(first, second)
        yield first, second


async def _status(svc: Service, api: dict[str, str], subject_id: str = SUBJECT) -> str:
    status: str = (await check(svc.client, api, subject_id))["status"]
    return status


async def _metric(svc: Service, name: str) -> float:
    text = (await svc.client.get("/metrics")).text
    match = re.search(rf'^{name}\{{cache="consent_check"\}} (\S+)$', text, re.MULTILINE)
    assert match, f"{name} is not in /metrics"
    return float(match.group(1))


async def _without_notice(db: asyncpg.Connection, sql: str, *args: Any) -> None:
    """A change that sends no notice (triggers off for this session), as a replica that missed
    its notice would see it."""
    async with db.transaction():
        await db.execute("set local session_replication_role = replica")
        await db.execute(sql, *args)


REVOKE_SQL = """
update consents set status = 'revoked', ended_at = now(), updated_at = now(),
       end_reason = 'revoked in the database'
where subject_id = $1 and status = 'granted'
"""


async def test_a_revocation_through_one_replica_reaches_the_others_cache(
    base_env: dict[str, str],
    clock: ManualClock,
    staff_keys: StaffKeys,
    api: dict[str, str],
    mailbox: Any,
) -> None:
    async with _replicas(base_env, clock, staff_keys) as (first, second):
        granted = await granted_consent(first, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
        assert await _status(second, api) == "granted"
        assert SUBJECT in _cache(second)  # the second replica now answers from its cache
        assert await _metric(second, "consent_cache_hits_total") == 0
        assert await _status(second, api) == "granted"
        assert await _metric(second, "consent_cache_hits_total") == 1

        response = await first.client.post(
            f"/v1/consents/{granted.consent_id}/revoke",
            json={"reason": "Guardian could not be confirmed (ticket 1)"},
            headers=first.staff("support"),
        )
        assert response.status_code == 200, response.text
        # The replica that wrote has settled before answering: its own check is current at once.
        assert await _status(first, api) == "revoked"
        await _until(lambda: SUBJECT not in _cache(second), "the notice on the other replica")
        assert await _status(second, api) == "revoked"
        assert await _metric(second, "consent_cache_invalidations_total") >= 1


async def test_with_its_listener_down_a_replica_reads_the_database_until_it_listens_again(
    base_env: dict[str, str],
    clock: ManualClock,
    staff_keys: StaffKeys,
    api: dict[str, str],
    mailbox: Any,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with _replicas(base_env, clock, staff_keys) as (first, second):
        await granted_consent(first, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
        assert await _status(second, api) == "granted"
        assert SUBJECT in _cache(second)

        # Hold the listener's reconnect until the test lets it (however slow the machine).
        may_reconnect = asyncio.Event()

        async def connect_when_allowed(*args: Any, **kwargs: Any) -> asyncpg.Connection:
            await may_reconnect.wait()
            return await asyncpg.connect(*args, **kwargs)

        monkeypatch.setattr(invalidation, "asyncpg", SimpleNamespace(connect=connect_when_allowed))
        listener = _listener(second)
        pid = listener.backend_pid
        assert pid is not None
        assert await db.fetchval("select pg_terminate_backend($1)", pid)
        await _until(lambda: not listener.healthy, "the replica to notice its listener is gone")
        assert len(_cache(second)) == 0

        # No notice could reach it now; it answers from the database, at once.
        await _without_notice(db, REVOKE_SQL, SUBJECT)
        assert await _status(second, api) == "revoked"
        assert len(_cache(second)) == 0  # and keeps nothing meanwhile
        await _without_notice(
            db,
            "update consents set status = 'granted', ended_at = null, end_reason = null "
            "where subject_id = $1",
            SUBJECT,
        )
        assert await _status(second, api) == "granted"
        assert len(_cache(second)) == 0

        may_reconnect.set()
        await _until(lambda: listener.healthy, "the listener to reconnect")
        assert listener.backend_pid not in {None, pid}
        assert len(_cache(second)) == 0
        assert await _status(second, api) == "granted"
        assert SUBJECT in _cache(second)  # caching again


class _HookAfterQuery:
    """The real pool; once, after a load's query has given its connection back and before its
    row is cached, run a hook."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.hook: Callable[[], Coroutine[Any, Any, None]] | None = None

    async def acquire(self, **options: Any) -> Any:
        return await self._pool.acquire(**options)

    async def release(self, connection: Any) -> None:
        await self._pool.release(connection)
        hook, self.hook = self.hook, None
        if hook is not None:
            await hook()


def _hooked(svc: Service) -> _HookAfterQuery:
    check_rows: CheckRows = svc.app.state.check_rows
    hooked = _HookAfterQuery(check_rows._pool)
    check_rows._pool = hooked  # type: ignore[assignment]
    return hooked


async def test_a_change_committed_while_a_read_is_in_flight_is_never_cached_back(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    await _listening(svc)
    _cache(svc).invalidate_key(SUBJECT)
    notices: list[str] = []
    _listener(svc).subscribe(notices.append)

    async def revoke_while_in_flight() -> None:
        # A real revocation with its real notice, dispatched before the read is cached.
        await db.execute(REVOKE_SQL, SUBJECT)
        await _until(lambda: f"consent_check:{SUBJECT}" in notices, "the revocation's notice")

    _hooked(svc).hook = revoke_while_in_flight
    # The read saw the row before the revocation committed: answering with it once is
    # unavoidable, keeping it is not.
    assert await _status(svc, api) == "granted"
    assert SUBJECT not in _cache(svc)
    assert await _status(svc, api) == "revoked"
    assert SUBJECT in _cache(svc)


async def test_only_the_key_invalidated_during_a_read_is_not_cached(
    svc: Service, api: dict[str, str]
) -> None:
    await _listening(svc)
    hooked = _hooked(svc)
    cache = _cache(svc)

    async def invalidate(subject_id: str) -> None:
        cache.invalidate(f"consent_check:{subject_id}")

    hooked.hook = lambda: invalidate("someone-else")
    assert await _status(svc, api, "child-a") == "none"
    assert "child-a" in cache  # a notice about another subject does not spoil this read

    hooked.hook = lambda: invalidate("child-b")
    assert await _status(svc, api, "child-b") == "none"
    assert "child-b" not in cache

    hooked.hook = lambda: invalidate("")  # malformed, but never too little: a key "" only
    assert await _status(svc, api, "child-c") == "none"
    assert "child-c" in cache

    async def empty_all() -> None:
        cache.invalidate("consent_check")

    hooked.hook = empty_all
    assert await _status(svc, api, "child-d") == "none"
    assert len(cache) == 0


async def test_an_unknown_subject_is_cached_until_a_request_is_opened_for_it(
    base_env: dict[str, str],
    clock: ManualClock,
    staff_keys: StaffKeys,
    api: dict[str, str],
) -> None:
    async with _replicas(base_env, clock, staff_keys) as (first, second):
        assert await _status(second, api) == "none"
        assert await _status(first, api) == "none"
        assert SUBJECT in _cache(second)
        assert SUBJECT in _cache(first)

        await create_request(
            first.client, api, subject_id=SUBJECT, email=GUARDIAN, birth_date="2018-05-01"
        )
        assert await _status(first, api) == "pending"
        await _until(lambda: SUBJECT not in _cache(second), "the request's notice")
        assert await _status(second, api) == "pending"


async def test_time_needs_no_notice_expiry_is_compared_with_now_on_every_answer(
    base_env: dict[str, str],
    clock: ManualClock,
    staff_keys: StaffKeys,
    api: dict[str, str],
    mailbox: Any,
    db: asyncpg.Connection,
) -> None:
    env = {"CONSENT_CACHE_TTL": "3600", "CONSENT_REQUEST_TTL": "600"}
    async with _replicas(base_env, clock, staff_keys, env) as (svc, _other):
        await create_request(
            svc.client, api, subject_id="child-pending", email=GUARDIAN, birth_date="2018-05-01"
        )
        assert await _status(svc, api, "child-pending") == "pending"
        assert "child-pending" in _cache(svc)
        hits = await _metric(svc, "consent_cache_hits_total")
        clock.advance(timedelta(seconds=601))
        assert await _status(svc, api, "child-pending") == "expired"  # from the cache
        assert await _metric(svc, "consent_cache_hits_total") == hits + 1

        await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
        lapse = clock.now() + timedelta(minutes=10)
        await db.execute(
            "update consents set expires_at = $2 where subject_id = $1 and status = 'granted'",
            SUBJECT,
            lapse,
        )
        await _until(lambda: SUBJECT not in _cache(svc), "the update's notice")
        answer = await check(svc.client, api, SUBJECT)
        assert (answer["status"], answer["allowed"]) == ("granted", True)
        assert SUBJECT in _cache(svc)
        clock.advance(timedelta(minutes=10))
        hits = await _metric(svc, "consent_cache_hits_total")
        answer = await check(svc.client, api, SUBJECT)
        assert (answer["status"], answer["allowed"], answer["token"]) == ("expired", False, None)
        assert await _metric(svc, "consent_cache_hits_total") == hits + 1


async def test_an_entry_older_than_the_ttl_is_read_again(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    await _listening(svc)
    assert await _status(svc, api) == "granted"
    assert SUBJECT in _cache(svc)
    await _without_notice(db, REVOKE_SQL, SUBJECT)
    assert await _status(svc, api) == "granted"  # the cache has not heard of it
    svc.clock.advance(timedelta(seconds=60))  # CONSENT_CACHE_TTL's default
    assert await _status(svc, api) == "revoked"


@pytest.mark.parametrize("svc_env", [{"CONSENT_CHECK_CACHE_SIZE": "2"}])
async def test_the_cache_holds_at_most_its_size_and_evicts_the_least_recently_used(
    svc: Service, api: dict[str, str]
) -> None:
    await _listening(svc)
    cache = _cache(svc)
    for subject_id in ("child-1", "child-2", "child-1", "child-3"):
        assert await _status(svc, api, subject_id) == "none"
    assert len(cache) == 2
    assert "child-1" in cache  # used again after child-2, so child-2 went first
    assert "child-3" in cache
    assert "child-2" not in cache
    assert await _metric(svc, "consent_cache_entries") == 2


@pytest.mark.parametrize("svc_env", [{"CONSENT_CHECK_CACHE_SIZE": "0"}])
async def test_a_size_of_zero_turns_the_cache_off(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    await _listening(svc)
    assert await _status(svc, api) == "granted"
    assert len(_cache(svc)) == 0
    await _without_notice(db, REVOKE_SQL, SUBJECT)
    assert await _status(svc, api) == "revoked"
    assert await _metric(svc, "consent_cache_hits_total") == 0


def test_the_cache_size_defaults_to_100000_and_is_bounded(base_env: dict[str, str]) -> None:
    assert load_settings(base_env).check_cache_size == 100_000
    assert load_settings({**base_env, "CONSENT_CHECK_CACHE_SIZE": "0"}).check_cache_size == 0
    for wrong in ("-1", "10000001", "many"):
        with pytest.raises(ConfigError, match=r"^CONSENT_CHECK_CACHE_SIZE: "):
            load_settings({**base_env, "CONSENT_CHECK_CACHE_SIZE": wrong})


@pytest.mark.parametrize("svc_env", [{"CONSENT_CACHE_TTL": "5"}])
async def test_the_check_and_api_key_caches_share_the_ttl(svc: Service) -> None:
    five = timedelta(seconds=5)
    assert _cache(svc)._ttl == five
    assert svc.app.state.authenticator._cache._ttl == five
