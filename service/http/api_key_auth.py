"""Bearer API keys for the main app: lookup with a cross-replica-invalidated cache, scope guards."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.db.api_keys import ApiKey, find_active_api_key, hash_api_key
from service.db.invalidation import InvalidationListener
from service.http.problems import ProblemError

API_KEYS_TOPIC = "api_keys"
_CACHE_LIMIT = 10_000


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
    def __init__(self, pool: asyncpg.Pool, listener: InvalidationListener | None) -> None:
        self._pool = pool
        self._listener = listener
        self._cache: dict[bytes, ApiKey] = {}
        self._generation = 0
        if listener is not None:
            listener.subscribe(self._invalidate)

    def _invalidate(self, topic: str) -> None:
        if topic in {"*", API_KEYS_TOPIC}:
            self._generation += 1
            self._cache.clear()

    async def authenticate(self, credential: str) -> ApiKey | None:
        key_hash = hash_api_key(credential)
        cacheable = self._listener is not None and self._listener.healthy
        if cacheable and (cached := self._cache.get(key_hash)) is not None:
            return cached
        generation = self._generation
        async with self._pool.acquire() as connection:
            key = await find_active_api_key(connection, key_hash)
        # A revocation that arrived while we queried must not be undone by caching the old row.
        if key is not None and cacheable and generation == self._generation:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key_hash] = key
        return key


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
