"""Retention: personal data of finished records is purged after configurable periods.

A purge keeps the record's status (so check can still answer) but removes the guardian's
address, its lookup hash, link tokens and the consent token. Each purge writes an anonymous
audit event: no subject id, no reason, only the record ids.
"""

from __future__ import annotations

from datetime import timedelta

from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import consents as consents_repo
from service.db import outbox as outbox_table
from service.db.audit_events import SYSTEM_ACTOR, record_event
from service.db.connection import Connection

BATCH = 500
# A client retrying with the same Idempotency-Key gets the first answer for this long.
IDEMPOTENCY_RETENTION = timedelta(days=1)
RATE_WINDOW_RETENTION = timedelta(hours=1)


async def purge_requests(connection: Connection, runtime: Runtime) -> int:
    settings = runtime.settings
    now = runtime.clock.now()
    async with connection.transaction():
        purged = await requests_repo.purge_closed(
            connection,
            now=now,
            denied_before=now - timedelta(seconds=settings.retention_denied),
            closed_before=now - timedelta(seconds=settings.retention_expired),
            limit=BATCH,
        )
        for request in purged:
            await record_event(
                connection,
                actor=SYSTEM_ACTOR,
                action="request.purged",
                occurred_at=now,
                request_id=request.id,
                from_status=request.status,
                to_status=request.status,
            )
    return len(purged)


async def purge_consents(connection: Connection, runtime: Runtime) -> int:
    settings = runtime.settings
    now = runtime.clock.now()
    async with connection.transaction():
        purged = await consents_repo.purge_ended(
            connection,
            now=now,
            ended_before=now - timedelta(seconds=settings.retention_withdrawn),
            expired_before=now - timedelta(seconds=settings.retention_expired),
            limit=BATCH,
        )
        await requests_repo.purge_answered(connection, [c.request_id for c in purged], now)
        for consent in purged:
            await record_event(
                connection,
                actor=SYSTEM_ACTOR,
                action="consent.purged",
                occurred_at=now,
                request_id=consent.request_id,
                consent_id=consent.id,
                from_status=consent.status,
                to_status=consent.status,
            )
    return len(purged)


async def purge_outbox(connection: Connection, runtime: Runtime) -> int:
    """Messages that were never delivered keep their (encrypted) address only so long."""
    before = runtime.clock.now() - timedelta(seconds=runtime.settings.retention_expired)
    return await outbox_table.drop_undelivered_payloads(connection, before)
