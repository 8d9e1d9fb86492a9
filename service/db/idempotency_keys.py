"""SQL for stored answers to requests sent with an Idempotency-Key."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from service.db.connection import Connection


class StoredAnswer(msgspec.Struct, frozen=True, kw_only=True):
    request_hash: bytes
    status_code: int
    response: dict[str, Any]


async def find(connection: Connection, api_key_id: uuid.UUID, key: str) -> StoredAnswer | None:
    row = await connection.fetchrow(
        "select request_hash, status_code, response from idempotency_keys "
        "where api_key_id = $1 and key = $2",
        api_key_id,
        key,
    )
    if row is None:
        return None
    return StoredAnswer(
        request_hash=row["request_hash"],
        status_code=row["status_code"],
        response=msgspec.json.decode(row["response"]),
    )


async def insert(
    connection: Connection,
    *,
    api_key_id: uuid.UUID,
    key: str,
    request_hash: bytes,
    status_code: int,
    response: dict[str, Any],
    subject_id: str,
    now: datetime,
) -> None:
    await connection.execute(
        """
        insert into idempotency_keys
            (api_key_id, key, request_hash, status_code, response, subject_id, created_at)
        values ($1, $2, $3, $4, $5::jsonb, $6, $7)
        """,
        api_key_id,
        key,
        request_hash,
        status_code,
        msgspec.json.encode(response).decode(),
        subject_id,
        now,
    )


async def delete_for_subject(connection: Connection, subject_id: str) -> None:
    await connection.execute("delete from idempotency_keys where subject_id = $1", subject_id)


async def delete_older_than(connection: Connection, before: datetime) -> None:
    await connection.execute("delete from idempotency_keys where created_at < $1", before)
