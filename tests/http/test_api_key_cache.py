"""The API-key cache and revocation notices: a NOTIFY evicts a cached key, and a revocation that
arrives while a lookup is in flight is never cached back (a generation counter guards it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from service.clock import SystemClock
from service.db.api_keys import hash_api_key, revoke_api_key
from service.db.invalidation import InvalidationListener, publish
from service.http.api_key_auth import ApiKeyAuthenticator
from tests.support.credentials import make_api_key

TTL = timedelta(seconds=60)


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
    authenticator = ApiKeyAuthenticator(auth_pool, listener, ttl=TTL, clock=SystemClock())
    seen = _notices(listener)
    key = await make_api_key(db, "consent:check")
    found = await authenticator.authenticate(key)
    assert found is not None
    assert hash_api_key(key) in authenticator._cache  # cached

    await _revoke_and_publish(db, key)
    await _until(lambda: "api_keys" in seen, "the api_keys notice")

    assert await authenticator.authenticate(key) is None


class _HookAfterQuery:
    """The real pool; once, after the lookup's query has given its connection back and before
    the result is cached, run a hook (a real revocation with its real NOTIFY through the real
    listener)."""

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


class _RacingAuthenticator(ApiKeyAuthenticator):
    def __init__(self, pool: asyncpg.Pool, listener: InvalidationListener) -> None:
        super().__init__(pool, listener, ttl=TTL, clock=SystemClock())
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
        authenticator._cache.invalidate("api_keys")

    authenticator.hooked.hook = invalidate
    assert await authenticator.authenticate(key) is not None
    assert hash_api_key(key) not in authenticator._cache
    # Without an invalidation in between, the next lookup is cached as usual.
    assert await authenticator.authenticate(key) is not None
    assert hash_api_key(key) in authenticator._cache
