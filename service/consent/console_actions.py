"""The console's actions on a case: what the subject page may offer, what staff see before
they confirm, and the actions themselves, each the staff API's domain function called with the
session's actor (``staff:<sub>``), so console and API stay one behaviour.

Each form and confirmation page shown is a ``console.viewed`` event naming the staff member and
the subject; each action leaves the event of its domain function.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from service.consent import (
    cancellation,
    endings,
    lifecycle,
    notifications,
    reminders,
    subjects,
    unlocking,
)
from service.consent.errors import NotFound
from service.consent.revocation_reasons import GuardianReason
from service.consent.runtime import Runtime
from service.consent.staff_sessions import StaffSession
from service.db import consent_requests as requests_repo
from service.db import consents as consents_repo
from service.db.connection import Connection
from service.db.consent_requests import ConsentRequest
from service.db.consents import Consent
from service.states import ConsentStatus, RequestStatus


class PendingRequest(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    created_at: datetime
    locale: str
    link_locked: bool
    has_address: bool
    # when the email may be resent, if not now (the reminder limits)
    next_reminder_at: datetime | None = None


class LiveConsent(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    granted_at: datetime
    withdrawal_locked: bool


class CaseActions(msgspec.Struct, frozen=True, kw_only=True):
    pending: list[PendingRequest]
    live: list[LiveConsent]


class RevocationTarget(msgspec.Struct, frozen=True, kw_only=True):
    """A consent staff are about to revoke: whether it can be, and in which language (None:
    the address is gone, no email) its guardian is told."""

    consent_id: uuid.UUID
    subject_id: str
    live: bool
    locale: str | None


class RevocationPreview(msgspec.Struct, frozen=True, kw_only=True):
    target: RevocationTarget
    email_subject: str | None
    email_text: str | None


class RequestTarget(msgspec.Struct, frozen=True, kw_only=True):
    request_id: uuid.UUID
    subject_id: str
    pending: bool


async def case_actions(
    connection: Connection, runtime: Runtime, overview: subjects.SubjectOverview
) -> CaseActions:
    """What can be done on the case now: pending requests and live consents, with their locks."""
    now = runtime.clock.now()
    pending = []
    for view in overview.requests:
        if view.status != RequestStatus.PENDING:
            continue
        request = await requests_repo.get_request(connection, view.id)
        if request is None:
            continue
        pending.append(
            PendingRequest(
                id=request.id,
                created_at=request.created_at,
                locale=request.locale,
                link_locked=unlocking.review_link_locked(request),
                has_address=request.guardian_email_enc is not None,
                next_reminder_at=await reminders.next_reminder_at(
                    connection, runtime, request, now
                ),
            )
        )
    live = []
    for consent_view in overview.consents:
        if consent_view.status != ConsentStatus.GRANTED:
            continue
        consent = await consents_repo.get_consent(connection, consent_view.id)
        if consent is None or (
            lifecycle.consent_status_at(consent.status, consent.expires_at, now)
            != ConsentStatus.GRANTED
        ):
            continue
        live.append(
            LiveConsent(
                id=consent.id,
                granted_at=consent.granted_at,
                withdrawal_locked=unlocking.withdrawal_link_locked(consent, runtime),
            )
        )
    return CaseActions(pending=pending, live=live)


async def _consent(connection: Connection, consent_id: uuid.UUID) -> Consent:
    consent = await consents_repo.get_consent(connection, consent_id)
    if consent is None:
        raise NotFound("No consent with this id.")
    return consent


async def _guardian_request(
    connection: Connection, runtime: Runtime, consent: Consent
) -> ConsentRequest | None:
    """The request whose guardian a revocation email would go to; None when it would not go."""
    request = await requests_repo.get_request(connection, consent.request_id)
    if request is None or notifications.guardian_email(runtime, request) is None:
        return None
    return request


async def revocation_target(
    connection: Connection, runtime: Runtime, consent_id: uuid.UUID
) -> RevocationTarget:
    consent = await _consent(connection, consent_id)
    request = await _guardian_request(connection, runtime, consent)
    status = lifecycle.consent_status_at(consent.status, consent.expires_at, runtime.clock.now())
    return RevocationTarget(
        consent_id=consent.id,
        subject_id=consent.subject_id,
        live=status == ConsentStatus.GRANTED,
        locale=request.locale if request else None,
    )


async def revocation_preview(
    connection: Connection,
    runtime: Runtime,
    consent_id: uuid.UUID,
    guardian_reason: GuardianReason | None,
) -> RevocationPreview:
    """The email the guardian would receive, word for word, in their language."""
    consent = await _consent(connection, consent_id)
    request = await _guardian_request(connection, runtime, consent)
    target = await revocation_target(connection, runtime, consent_id)
    if request is None:
        return RevocationPreview(target=target, email_subject=None, email_text=None)
    email = notifications.revoked_email(
        runtime, consent, request, guardian_reason, runtime.clock.now()
    )
    return RevocationPreview(target=target, email_subject=email.subject, email_text=email.text)


async def revoke(
    connection: Connection,
    runtime: Runtime,
    session: StaffSession,
    consent_id: uuid.UUID,
    *,
    reason: str,
    note: str | None,
    guardian_reason: GuardianReason | None,
) -> Consent:
    return await endings.revoke(
        connection,
        runtime,
        consent_id,
        reason=reason,
        staff=session.sub,
        note=note,
        guardian_reason=guardian_reason,
    )


async def request_target(
    connection: Connection, runtime: Runtime, request_id: uuid.UUID
) -> RequestTarget:
    request = await requests_repo.get_request(connection, request_id)
    if request is None:
        raise NotFound("No consent request with this id.")
    status = lifecycle.request_status_at(request.status, request.expires_at, runtime.clock.now())
    return RequestTarget(
        request_id=request.id,
        subject_id=request.subject_id,
        pending=status == RequestStatus.PENDING,
    )


async def remind(
    connection: Connection, runtime: Runtime, session: StaffSession, request_id: uuid.UUID
) -> str:
    """Email the guardian of a pending request a reminder now; the subject id."""
    await reminders.remind(connection, runtime, request_id, actor=session.actor)
    return (await request_target(connection, runtime, request_id)).subject_id


async def unlock_review_link(
    connection: Connection, runtime: Runtime, session: StaffSession, request_id: uuid.UUID
) -> str:
    request = await unlocking.unlock_review_link(
        connection, runtime, request_id, actor=session.actor
    )
    return request.subject_id


async def unlock_withdrawal_link(
    connection: Connection, runtime: Runtime, session: StaffSession, consent_id: uuid.UUID
) -> str:
    consent = await unlocking.unlock_withdrawal_link(
        connection, runtime, consent_id, actor=session.actor
    )
    return consent.subject_id


async def cancel_request(
    connection: Connection, runtime: Runtime, session: StaffSession, request_id: uuid.UUID
) -> str:
    cancelled = await cancellation.cancel_request(
        connection,
        runtime,
        request_id,
        actor=session.actor,
        reason=cancellation.STAFF_CANCELLED,
    )
    return cancelled.subject_id
