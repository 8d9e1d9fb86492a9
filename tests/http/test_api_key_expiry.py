"""A cached API key expires after ``CONSENT_CACHE_TTL``: a key revoked without a notice (an
UPDATE typed into psql, a notice missed while a replica's listener was down) is refused once
its entry has expired, at the latest. Time is moved on the app's clock, never slept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import httpx
import pytest
from litestar import Litestar

from service.app import create_app
from service.clock import ManualClock
from service.db.api_keys import hash_api_key
from service.http.api_key_auth import ApiKeyAuthenticator
from service.settings import ConfigError, load_settings
from tests.support.credentials import bearer, make_api_key
from tests.support.problems import assert_problem
from tests.support.service import serving

CHECK = "/v1/consents/check?subject_id=child-1&purpose=tutoring"


async def _listening(app: Litestar) -> None:
    """Bounded wait for the invalidation listener (caching is off until it listens)."""
    for _ in range(200):
        if app.state.listener.healthy:
            return
        await asyncio.sleep(0.025)
    pytest.fail("the invalidation listener did not connect")


async def _revoke_without_notice(db: asyncpg.Connection, key: str) -> None:
    """What an operator's UPDATE in psql does: no NOTIFY reaches any replica."""
    await db.execute(
        "update api_keys set revoked_at = now() where key_hash = $1", hash_api_key(key)
    )


@asynccontextmanager
async def _served(
    base_env: dict[str, str], clock: ManualClock, **env: str
) -> AsyncIterator[tuple[Litestar, httpx.AsyncClient]]:
    """The app with ``env`` added to its settings, listening for notices, and a client."""
    app = create_app(load_settings({**base_env, **env}), clock=clock)
    async with serving(app) as http:
        await _listening(app)
        yield app, http


@pytest.fixture
async def served(
    base_env: dict[str, str], clock: ManualClock
) -> AsyncIterator[tuple[Litestar, httpx.AsyncClient]]:
    async with _served(base_env, clock) as pair:
        yield pair


async def test_a_key_revoked_without_a_notice_is_refused_once_its_entry_expires(
    served: tuple[Litestar, httpx.AsyncClient], clock: ManualClock, db: asyncpg.Connection
) -> None:
    app, http = served
    key = await make_api_key(db, "consent:check")
    authenticator: ApiKeyAuthenticator = app.state.authenticator
    assert (await http.get(CHECK, headers=bearer(key))).status_code == 200
    assert hash_api_key(key) in authenticator._cache

    await _revoke_without_notice(db, key)
    # Until the entry expires the revocation is unseen: the window the TTL bounds.
    clock.advance(timedelta(seconds=59))
    assert (await http.get(CHECK, headers=bearer(key))).status_code == 200

    clock.advance(timedelta(seconds=1))  # 60 s, the default CONSENT_CACHE_TTL
    refused = await http.get(CHECK, headers=bearer(key))
    assert_problem(refused, 401)


async def test_the_ttl_is_configurable(
    base_env: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    async with _served(base_env, clock, CONSENT_CACHE_TTL="5") as (_app, http):
        key = await make_api_key(db, "consent:check")
        assert (await http.get(CHECK, headers=bearer(key))).status_code == 200
        await _revoke_without_notice(db, key)
        clock.advance(timedelta(seconds=5))
        assert_problem(await http.get(CHECK, headers=bearer(key)), 401)


async def test_a_ttl_of_zero_caches_nothing(
    base_env: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    async with _served(base_env, clock, CONSENT_CACHE_TTL="0") as (app, http):
        key = await make_api_key(db, "consent:check")
        assert (await http.get(CHECK, headers=bearer(key))).status_code == 200
        assert hash_api_key(key) not in app.state.authenticator._cache
        await _revoke_without_notice(db, key)
        assert_problem(await http.get(CHECK, headers=bearer(key)), 401)


def test_the_ttl_defaults_to_a_minute_and_is_bounded(base_env: dict[str, str]) -> None:
    assert load_settings(base_env).cache_ttl == 60
    for wrong in ("-1", "3601", "soon"):
        with pytest.raises(ConfigError, match=r"^CONSENT_CACHE_TTL: "):
            load_settings({**base_env, "CONSENT_CACHE_TTL": wrong})
