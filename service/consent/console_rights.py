"""The console's rights pages (the rights-requests queue, the confirmation of a case action):
opening one is an audit event naming the staff member, like every console page.

The actions themselves are the staff API's domain functions (``data_requests``,
``restrictions``, ``rectification``, ``subjects``) called with the session's staff member.
"""

from __future__ import annotations

import uuid
from typing import Any

from service.consent.console_views import VIEWED
from service.consent.runtime import Runtime
from service.consent.staff_sessions import StaffSession
from service.db import consents as consents_repo
from service.db.audit_events import record_event
from service.db.connection import Connection


async def viewed(
    connection: Connection,
    runtime: Runtime,
    session: StaffSession,
    page: str,
    *,
    subject_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    async with connection.transaction():
        await record_event(
            connection,
            actor=session.actor,
            action=VIEWED,
            occurred_at=runtime.clock.now(),
            subject_id=subject_id,
            details={"page": page, **(details or {})},
        )


async def consent_of_subject(
    connection: Connection, subject_id: str, consent_id: uuid.UUID
) -> bool:
    consent = await consents_repo.get_consent(connection, consent_id)
    return consent is not None and consent.subject_id == subject_id
