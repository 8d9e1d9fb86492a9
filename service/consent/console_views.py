"""What the support console shows, and the audit event each view leaves: every page a staff
member opens is recorded with their name (actor ``staff:<sub>``), the subject it showed, and
never the guardian address they searched for.

The console's actions (revoke, resend, unlock, cancel, restrict, rectify, export, erase) are
the staff API's domain functions (``endings``, ``subjects``, ...) called with the session's
actor; a page that offers one adds its form here and its route in ``service.http.console``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from service.consent import check, lifecycle, subjects
from service.consent.child_hints import child_hints
from service.consent.runtime import Runtime
from service.consent.staff_sessions import StaffSession
from service.db import consents as consents_repo
from service.db import subjects as subjects_repo
from service.db.audit_events import AuditEvent, record_event, subject_events
from service.db.connection import Connection
from service.db.consents import CheckRow, Consent
from service.states import CheckStatus, OutboxKind, OutboxStatus

VIEWED = "console.viewed"
SEARCHED = "console.searched"


class PurposeShown(StrEnum):
    """What the console says about a purpose the check answers ``allowed: false`` for,
    beyond the check status itself (which answers for the whole request or consent)."""

    STATUS = "status"
    NOT_ASKED = "not_asked"  # the request or consent never covered it
    NOT_CHOSEN = "not_chosen"  # asked for, but the guardian did not give it
    WITHDRAWN = "withdrawn"  # the guardian withdrew it while the rest stayed live


class PurposeState(msgspec.Struct, frozen=True, kw_only=True):
    """One catalogue purpose as the check endpoint answers it for the subject now, and what
    is true of that purpose in the request or consent the answer comes from."""

    purpose: str
    status: CheckStatus
    allowed: bool
    expires_at: datetime | None
    shown: PurposeShown = PurposeShown.STATUS
    withdrawn_at: datetime | None = None


class GuardianMatch(msgspec.Struct, frozen=True, kw_only=True):
    """A child found by guardian address, with what support needs to pick the right one."""

    subject_id: str
    requests: int
    latest_request_at: datetime
    latest_status: str | None
    child_hint: str | None


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
) -> tuple[str, list[GuardianMatch]]:
    """The staff lookup (``subjects.find_by_guardian``); the address stays out of the trail.
    The address as shown (masked) and each child found with its latest request's status (the
    consent's, once one came of it) and the child's hint, if any."""
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
    now = runtime.clock.now()
    matches = []
    for match in found.subjects:
        pseudonym = runtime.protector.subject_pseudonym(match.subject_id)
        requests = await subjects_repo.requests_of(connection, match.subject_id, pseudonym)
        latest = max(requests, key=lambda r: r.created_at, default=None)
        status: str | None = None
        hint: str | None = None
        if latest is not None:
            status = lifecycle.request_status_at(latest.status, latest.expires_at, now)
            for consent in await subjects_repo.consents_of(connection, match.subject_id, pseudonym):
                if consent.request_id == latest.id:
                    status = lifecycle.consent_status_at(consent.status, consent.expires_at, now)
            hint = (await child_hints(connection, runtime, match.subject_id)).get(latest.id)
        matches.append(
            GuardianMatch(
                subject_id=match.subject_id,
                requests=match.requests,
                latest_request_at=match.latest_request_at,
                latest_status=status,
                child_hint=hint,
            )
        )
    return found.guardian_email, matches


async def subject_case(
    connection: Connection, runtime: Runtime, session: StaffSession, subject_id: str
) -> SubjectCase:
    """Everything support needs to handle a family's case: the check answer per purpose,
    requests and consents (the address masked), the audit trail, every email and webhook."""
    now = runtime.clock.now()
    row = await consents_repo.check_row(connection, subject_id)
    # the console's own view event below names the staff member: one event per view
    overview = await subjects.overview(
        connection, runtime, subject_id, reader=session.actor, record_read=False
    )
    consent = (
        await consents_repo.get_consent(connection, row.consent_id)
        if row.consent_id is not None
        else None
    )
    purposes = [
        _purpose_state(row, overview, consent, subject_id, purpose.id, now)
        for purpose in runtime.catalogue.purposes
    ]
    case = SubjectCase(
        subject_id=subject_id,
        purposes=purposes,
        overview=overview,
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


def _purpose_state(
    row: CheckRow,
    overview: subjects.SubjectOverview,
    consent: Consent | None,
    subject_id: str,
    purpose: str,
    now: datetime,
) -> PurposeState:
    """The check answer for ``purpose``, and what is true of that purpose in the consent or
    request the answer comes from. The check status answers for the whole consent or
    request ("revoked", "pending"); for a purpose it never covered that misleads."""
    answer = check.answer_check(row, subject_id=subject_id, purpose=purpose, now=now)
    shown = PurposeShown.STATUS
    withdrawn_at = None
    if not answer.allowed and answer.status != CheckStatus.RESTRICTED:
        if answer.consent_id is not None and consent is not None:
            asked = next(
                (r.purposes for r in overview.requests if r.id == consent.request_id),
                consent.purposes,
            )
            withdrawals = {w.purpose: w.withdrawn_at for w in consent.withdrawn_purposes}
            if purpose in consent.purposes:
                pass
            elif purpose in withdrawals:
                shown, withdrawn_at = PurposeShown.WITHDRAWN, withdrawals[purpose]
            elif purpose in asked:
                shown = PurposeShown.NOT_CHOSEN
            else:
                shown = PurposeShown.NOT_ASKED
        elif answer.status in _REQUEST_STATUSES and overview.requests:
            latest = max(overview.requests, key=lambda r: r.created_at)
            if purpose not in latest.purposes:
                shown = PurposeShown.NOT_ASKED
    return PurposeState(
        purpose=purpose,
        status=answer.status,
        allowed=answer.allowed,
        # a date next to a purpose that is not allowed reads as "allowed until"
        expires_at=answer.expires_at if answer.allowed else None,
        shown=shown,
        withdrawn_at=withdrawn_at,
    )


_REQUEST_STATUSES = {
    CheckStatus.PENDING,
    CheckStatus.DENIED,
    CheckStatus.EXPIRED,
}
