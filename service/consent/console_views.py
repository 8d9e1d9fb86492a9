"""What the support console shows, and the audit event each view leaves: every page a staff
member opens is recorded with their name (actor ``staff:<sub>``), the subject it showed, and
never the guardian address they searched for.

The console's actions (revoke, resend, unlock, cancel, restrict, rectify, export, erase) are
the staff API's domain functions (``endings``, ``subjects``, ...) called with the session's
actor; a page that offers one adds its form here and its route in ``service.http.console``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from service.consent import check, subjects
from service.consent.runtime import Runtime
from service.consent.staff_sessions import StaffSession
from service.db import consents as consents_repo
from service.db import subjects as subjects_repo
from service.db.audit_events import AuditEvent, record_event, subject_events
from service.db.connection import Connection
from service.states import CheckStatus, OutboxKind, OutboxStatus

VIEWED = "console.viewed"
SEARCHED = "console.searched"


class PurposeState(msgspec.Struct, frozen=True, kw_only=True):
    """One catalogue purpose as the check endpoint answers it for the subject now."""

    purpose: str
    status: CheckStatus
    allowed: bool
    expires_at: datetime | None


class MessageView(msgspec.Struct, frozen=True, kw_only=True):
    kind: OutboxKind
    topic: str
    status: OutboxStatus
    attempts: int
    created_at: datetime
    sent_at: datetime | None


class SubjectCase(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    purposes: list[PurposeState]
    overview: subjects.SubjectOverview
    events: list[AuditEvent]
    messages: list[MessageView]

    @property
    def known(self) -> bool:
        return bool(self.overview.requests or self.overview.consents or self.events)


async def _record_view(
    connection: Connection,
    runtime: Runtime,
    session: StaffSession,
    action: str,
    *,
    subject_id: str | None = None,
    details: dict[str, Any],
) -> None:
    async with connection.transaction():
        await record_event(
            connection,
            actor=session.actor,
            action=action,
            occurred_at=runtime.clock.now(),
            subject_id=subject_id,
            details=details,
        )


async def viewed(
    connection: Connection,
    runtime: Runtime,
    session: StaffSession,
    page: str,
    *,
    subject_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """A console page was shown to ``session``'s staff member (the ``console.viewed`` event)."""
    await _record_view(
        connection,
        runtime,
        session,
        VIEWED,
        subject_id=subject_id,
        details={"page": page, **(details or {})},
    )


async def view_page(
    connection: Connection, runtime: Runtime, session: StaffSession, page: str
) -> None:
    """A page that shows no subject (the home page, the search form)."""
    await viewed(connection, runtime, session, page)


async def search_by_subject(
    connection: Connection, runtime: Runtime, session: StaffSession, subject_id: str
) -> list[str]:
    """The subject id itself when anything is stored about it, else nothing."""
    pseudonym = runtime.protector.subject_pseudonym(subject_id)
    found = bool(
        await subjects_repo.requests_of(connection, subject_id, pseudonym)
        or await subjects_repo.consents_of(connection, subject_id, pseudonym)
    )
    await _record_view(
        connection,
        runtime,
        session,
        SEARCHED,
        subject_id=subject_id if found else None,
        details={"by": "subject_id", "results": int(found)},
    )
    return [subject_id] if found else []


async def search_by_guardian(
    connection: Connection, runtime: Runtime, session: StaffSession, guardian_email: str
) -> subjects.SubjectSearch:
    """The staff lookup (``subjects.find_by_guardian``); the address stays out of the trail."""
    found = await subjects.find_by_guardian(
        connection, runtime, guardian_email, reader=session.actor
    )
    await _record_view(
        connection,
        runtime,
        session,
        SEARCHED,
        details={"by": "guardian_email", "results": len(found.subjects)},
    )
    return found


async def subject_case(
    connection: Connection, runtime: Runtime, session: StaffSession, subject_id: str
) -> SubjectCase:
    """Everything support needs to handle a family's case: the check answer per purpose,
    requests and consents (the address masked), the audit trail, every email and webhook."""
    now = runtime.clock.now()
    row = await consents_repo.check_row(connection, subject_id)
    purposes = []
    for purpose in runtime.catalogue.purposes:
        answer = check.answer_check(row, subject_id=subject_id, purpose=purpose.id, now=now)
        purposes.append(
            PurposeState(
                purpose=purpose.id,
                status=answer.status,
                allowed=answer.allowed,
                expires_at=answer.expires_at,
            )
        )
    case = SubjectCase(
        subject_id=subject_id,
        purposes=purposes,
        overview=await subjects.overview(connection, runtime, subject_id, reader=session.actor),
        events=await subject_events(connection, subject_id),
        messages=[
            MessageView(
                kind=m.kind,
                topic=m.topic,
                status=m.status,
                attempts=m.attempts,
                created_at=m.created_at,
                sent_at=m.sent_at,
            )
            for m in await subjects_repo.messages_of(connection, subject_id)
        ],
    )
    await viewed(connection, runtime, session, "subject", subject_id=subject_id)
    return case
