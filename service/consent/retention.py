"""Retention: personal data of finished records is purged after configurable periods.

A purge keeps the record's status (so check can still answer) but removes the guardian's
address, its lookup hash, link tokens and the consent token. Each purge writes an anonymous
audit event: no subject id, no reason, only the record ids.
"""

from __future__ import annotations

from datetime import timedelta

from service.consent.runtime import Runtime
from service.db.audit_events import SYSTEM_ACTOR, record_event
from service.db.connection import Connection
from service.delivery import outbox

BATCH = 500


async def purge_requests(connection: Connection, runtime: Runtime) -> int:
    settings = runtime.settings
    now = runtime.clock.now()
    async with connection.transaction():
        rows = await connection.fetch(
            """
            update consent_requests
            set guardian_email_enc = null, guardian_email_hash = null, link_token_hash = null,
                birth_date = null, purged_at = $1, updated_at = $1
            where id in (
                select id from consent_requests
                where purged_at is null
                  and ((status = 'denied' and decided_at <= $2)
                    or (status in ('expired', 'cancelled') and decided_at <= $3))
                order by decided_at limit $4
                for update skip locked
            )
            returning id, status
            """,
            now,
            now - timedelta(seconds=settings.retention_denied),
            now - timedelta(seconds=settings.retention_expired),
            BATCH,
        )
        for row in rows:
            await record_event(
                connection,
                actor=SYSTEM_ACTOR,
                action="request.purged",
                occurred_at=now,
                request_id=row["id"],
                from_status=row["status"],
                to_status=row["status"],
            )
    return len(rows)


async def purge_consents(connection: Connection, runtime: Runtime) -> int:
    settings = runtime.settings
    now = runtime.clock.now()
    async with connection.transaction():
        rows = await connection.fetch(
            """
            update consents
            set token = null, withdraw_token_hash = null, purged_at = $1, updated_at = $1
            where id in (
                -- both rows at once, skipping any a transaction holds, so a purge never waits
                -- on a request row while holding a consent row (erasure locks the other way)
                select c.id from consents c join consent_requests r on r.id = c.request_id
                where c.purged_at is null
                  and ((c.status in ('withdrawn', 'revoked', 'superseded') and c.ended_at <= $2)
                    or (c.status = 'expired' and c.ended_at <= $3))
                order by c.ended_at limit $4
                for update of r, c skip locked
            )
            returning id, request_id, status
            """,
            now,
            now - timedelta(seconds=settings.retention_withdrawn),
            now - timedelta(seconds=settings.retention_expired),
            BATCH,
        )
        await connection.execute(
            """
            update consent_requests
            set guardian_email_enc = null, guardian_email_hash = null, link_token_hash = null,
                purged_at = $2, updated_at = $2
            where id = any($1::uuid[]) and purged_at is null
            """,
            [row["request_id"] for row in rows],
            now,
        )
        for row in rows:
            await record_event(
                connection,
                actor=SYSTEM_ACTOR,
                action="consent.purged",
                occurred_at=now,
                request_id=row["request_id"],
                consent_id=row["id"],
                from_status=row["status"],
                to_status=row["status"],
            )
    return len(rows)


async def purge_outbox(connection: Connection, runtime: Runtime) -> int:
    """Messages that were never delivered keep their (encrypted) address only so long."""
    before = runtime.clock.now() - timedelta(seconds=runtime.settings.retention_expired)
    return await outbox.purge_undelivered(connection, before)
