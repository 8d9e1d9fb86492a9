"""API keys: only a SHA-256 of each key is stored (keys carry 256 random bits)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime

import msgspec

from service.db.connection import Connection

KEY_PREFIX = "csk_"
# subject:erase: the main app erases a child whose account it deleted (DELETE /v1/subjects/{id})
SCOPES = ("consent:request", "consent:check", "subject:erase")


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    name: str
    key_prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None = None


def hash_api_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def create_api_key(
    connection: Connection, *, name: str, scopes: list[str], now: datetime
) -> tuple[str, ApiKey]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"unknown scope(s) {unknown}; choose from {', '.join(SCOPES)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = await connection.fetchrow(
        """
        insert into api_keys (id, name, key_prefix, key_hash, scopes, created_at)
        values ($1, $2, $3, $4, $5, $6)
        returning id, name, key_prefix, scopes, created_at, revoked_at
        """,
        uuid.uuid4(),
        name,
        key[: len(KEY_PREFIX) + 6],
        hash_api_key(key),
        sorted(set(scopes)),
        now,
    )
    assert row is not None
    return key, msgspec.convert(dict(row), ApiKey)


async def list_api_keys(connection: Connection) -> list[ApiKey]:
    rows = await connection.fetch(
        "select id, name, key_prefix, scopes, created_at, revoked_at from api_keys "
        "order by created_at"
    )
    return [msgspec.convert(dict(row), ApiKey) for row in rows]


async def get_api_key(connection: Connection, key_id: uuid.UUID) -> ApiKey | None:
    row = await connection.fetchrow(
        "select id, name, key_prefix, scopes, created_at, revoked_at from api_keys where id = $1",
        key_id,
    )
    return msgspec.convert(dict(row), ApiKey) if row else None


async def revoke_api_key(connection: Connection, key_id: uuid.UUID, now: datetime) -> bool:
    status = await connection.execute(
        "update api_keys set revoked_at = $2 where id = $1 and revoked_at is null", key_id, now
    )
    return status.endswith(" 1")


async def find_active_api_key(connection: Connection, key_hash: bytes) -> ApiKey | None:
    row = await connection.fetchrow(
        """
        select id, name, key_prefix, scopes, created_at, revoked_at
        from api_keys where key_hash = $1 and revoked_at is null
        """,
        key_hash,
    )
    return msgspec.convert(dict(row), ApiKey) if row else None
