"""Transaction-scoped advisory locks that serialize work on one subject, guardian or key.

Lock order in every transaction: the subject lock, then rows (requests before consents), and
last the audit chain lock taken by ``audit_events.record_event``.
"""

from __future__ import annotations

import hashlib
import uuid

from service.db.connection import Connection


def _lock_key(namespace: str, value: str) -> int:
    digest = hashlib.sha256(f"{namespace}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _lock(connection: Connection, namespace: str, value: str) -> None:
    await connection.execute("select pg_advisory_xact_lock($1)", _lock_key(namespace, value))


async def lock_subject(connection: Connection, subject_id: str) -> None:
    """Everything that changes a subject's requests or consents holds this first."""
    await _lock(connection, "subject", subject_id)


async def lock_guardian(connection: Connection, email_hash: bytes) -> None:
    """Serializes the per-guardian request limit."""
    await _lock(connection, "guardian", email_hash.hex())


async def lock_idempotency_key(connection: Connection, api_key_id: uuid.UUID, key: str) -> None:
    """Serializes concurrent retries carrying the same Idempotency-Key."""
    await _lock(connection, "idempotency", f"{api_key_id}:{key}")
