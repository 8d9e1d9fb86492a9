"""Bearer API keys for the main app: lookup with a cross-replica-invalidated cache, scope guards."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.clock import Clock
from service.db.api_keys import ApiKey, find_active_api_key, hash_api_key
from service.db.cache import InvalidatedCache
from service.db.invalidation import InvalidationListener
from service.db.pool import borrow
from service.http.problems import ProblemError
from service.metrics import CacheStats

API_KEYS_TOPIC = "api_keys"


def bearer_credential(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise ProblemError(
            401,
            "Missing bearer credential: send 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": 'Bearer realm="consent"'},
        )
    return credential.strip()


class ApiKeyAuthenticator:
    """Finds the active key of a credential; keys are cached by hash (``InvalidatedCache``:
    evicted by a revocation notice, expired after ``ttl``, bypassed while not listening)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        listener: InvalidationListener | None,
        *,
        ttl: timedelta,
        clock: Clock,
        stats: CacheStats | None = None,
    ) -> None:
        self._pool = pool
        self._cache: InvalidatedCache[bytes, ApiKey] = InvalidatedCache(
            topic=API_KEYS_TOPIC, ttl=ttl, clock=clock, listener=listener, stats=stats
        )

    async def authenticate(self, credential: str) -> ApiKey | None:
        key_hash = hash_api_key(credential)

        async def load() -> ApiKey | None:
            async with borrow(self._pool) as connection:
                return await find_active_api_key(connection, key_hash)

        return await self._cache.get_or_load(key_hash, load)


async def api_key_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Admit a valid API key holding every scope listed in the handler's ``opt['scopes']``."""
    credential = bearer_credential(connection)
    authenticator: ApiKeyAuthenticator = connection.app.state.authenticator
    key = await authenticator.authenticate(credential)
    if key is None:
        raise ProblemError(
            401,
            "The API key is unknown or revoked.",
            headers={"WWW-Authenticate": 'Bearer realm="consent", error="invalid_token"'},
        )
    required: tuple[str, ...] = handler.opt.get("scopes", ())
    missing = [scope for scope in required if scope not in key.scopes]
    if missing:
        raise ProblemError(403, f"This API key lacks the scope {', '.join(missing)}.")
    connection.state.api_key = key
