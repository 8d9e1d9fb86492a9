"""Restriction of processing (GDPR Art. 18), placed and lifted by staff.

While a subject is restricted, the check answers ``restricted`` (never allowed) for every
purpose: the restriction is on the subject, not on a consent, so a consent a guardian gives
meanwhile is recorded but allows nothing until the restriction is lifted. The data stays.
The main app hears ``subject.restricted`` and ``subject.unrestricted``; each change is an audit
event naming the staff member.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from service.consent.errors import Conflict, NotFound
from service.consent.runtime import Runtime
from service.db import locks
from service.db import restrictions as restrictions_repo
from service.db.audit_events import record_event
from service.db.connection import Connection
from service.db.restrictions import Restriction
from service.delivery import outbox


class RestrictionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A restriction as the API shows it; ``lifted_at`` and ``lifted_by`` once it is lifted."""

    subject_id: str
    reason: str
    restricted_by: str
    restricted_at: datetime
    lifted_at: datetime | None = None
    lifted_by: str | None = None


def restriction_record(
    restriction: Restriction, *, lifted_at: datetime | None = None, lifted_by: str | None = None
) -> RestrictionRecord:
    return RestrictionRecord(
        subject_id=restriction.subject_id,
        reason=restriction.reason,
        restricted_by=restriction.restricted_by,
        restricted_at=restriction.restricted_at,
        lifted_at=lifted_at,
        lifted_by=lifted_by,
    )


async def _webhook(
    connection: Connection, runtime: Runtime, subject_id: str, status: str, now: datetime
) -> None:
    """``subject.<status>``: ids and status only, never the reason (staff's words)."""
    if runtime.settings.webhook_url is None:
        return
    await outbox.enqueue_webhook(
        connection,
        event_type=f"subject.{status}",
        subject_id=subject_id,
        related_id=uuid.uuid4(),
        data={"subject_id": subject_id, "status": status},
        now=now,
    )


async def restrict(
    connection: Connection, runtime: Runtime, subject_id: str, *, reason: str, staff: str
) -> RestrictionRecord:
    """Restrict a subject's processing. A subject restricted already is a conflict: its
    restriction (and reason) stays as it was placed."""
    now = runtime.clock.now()
    async with connection.transaction():
        await locks.lock_subject(connection, subject_id)
        if not await restrictions_repo.subject_is_known(connection, subject_id):
            raise NotFound("Nothing is stored about this subject, so there is nothing to restrict.")
        restriction = await restrictions_repo.insert_restriction(
            connection, subject_id=subject_id, reason=reason, restricted_by=staff, now=now
        )
        if restriction is None:
            existing = await restrictions_repo.get_restriction(connection, subject_id)
            since = f" since {existing.restricted_at.isoformat()}" if existing else ""
            raise Conflict(f"This subject's processing is restricted already{since}.")
        await _webhook(connection, runtime, subject_id, "restricted", now)
        await record_event(
            connection,
            actor=f"staff:{staff}",
            action="subject.restricted",
            occurred_at=now,
            subject_id=subject_id,
            reason=reason,
        )
    return restriction_record(restriction)


async def lift(
    connection: Connection, runtime: Runtime, subject_id: str, *, staff: str
) -> RestrictionRecord:
    """Lift a subject's restriction: the check answers from its consents and requests again."""
    now = runtime.clock.now()
    async with connection.transaction():
        await locks.lock_subject(connection, subject_id)
        lifted = await restrictions_repo.delete_restriction(connection, subject_id)
        if lifted is None:
            raise NotFound("This subject's processing is not restricted.")
        await _webhook(connection, runtime, subject_id, "unrestricted", now)
        await record_event(
            connection,
            actor=f"staff:{staff}",
            action="subject.unrestricted",
            occurred_at=now,
            subject_id=subject_id,
            details={"restricted_at": lifted.restricted_at.isoformat()},
        )
    return restriction_record(lifted, lifted_at=now, lifted_by=staff)


async def current(connection: Connection, subject_id: str) -> RestrictionRecord | None:
    restriction = await restrictions_repo.get_restriction(connection, subject_id)
    return restriction_record(restriction) if restriction else None
