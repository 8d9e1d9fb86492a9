"""The ``idempotency_keys`` table: stored answers to retried create-request calls."""

from __future__ import annotations

from datetime import datetime

from service.db.connection import Connection


async def purge_created_before(connection: Connection, before: datetime) -> int:
    """Forget the keys created before ``before``; how many were removed."""
    result = await connection.execute("delete from idempotency_keys where created_at < $1", before)
    return int(result.split()[-1])
