"""Support unlocks a guardian link that refused too many forged or replayed forms: a review
link (locked until the request expires, ``decisions.MAX_FAILED_SUBMISSIONS``) or a withdrawal
link (locked for ``endings.WITHDRAWAL_LOCK``). The count starts again from zero; the unlock is
an audit event naming the staff member."""

from __future__ import annotations

import uuid

from service.consent import decisions, lifecycle
from service.consent.errors import Conflict, NotFound
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import consents as consents_repo
from service.db import locks
from service.db.audit_events import record_event
from service.db.connection import Connection
from service.db.consent_requests import ConsentRequest
from service.db.consents import Consent
from service.states import ConsentStatus, RequestStatus

REQUEST_UNLOCKED = "request.unlocked"
WITHDRAWAL_UNLOCKED = "consent.withdrawal_unlocked"


def review_link_locked(request: ConsentRequest) -> bool:
    return request.failed_submissions >= decisions.MAX_FAILED_SUBMISSIONS


def withdrawal_link_locked(consent: Consent, runtime: Runtime) -> bool:
    locked_until = consent.withdraw_locked_until
    return locked_until is not None and locked_until > runtime.clock.now()


async def unlock_review_link(
    connection: Connection, runtime: Runtime, request_id: uuid.UUID, *, actor: str
) -> ConsentRequest:
    """Unlock a pending request's locked review link; a link that is not locked, or a request
    no longer pending, is a conflict."""
    now = runtime.clock.now()
    async with connection.transaction():
        found = await requests_repo.get_request(connection, request_id)
        if found is None:
            raise NotFound("No consent request with this id.")
        await locks.lock_subject(connection, found.subject_id)
        request = await requests_repo.lock_request(connection, request_id)
        if request is None:
            raise NotFound("No consent request with this id.")
        status = lifecycle.request_status_at(request.status, request.expires_at, now)
        if status != RequestStatus.PENDING:
            raise Conflict(
                f"This request is {status}: only a pending request's link can be unlocked.",
                current_status=status,
            )
        if not review_link_locked(request):
            raise Conflict("This request's link is not locked.", current_status=status)
        unlocked = await requests_repo.clear_failed_submissions(connection, request_id)
        if unlocked is None:
            raise Conflict("The request was decided concurrently.")
        await record_event(
            connection,
            actor=actor,
            action=REQUEST_UNLOCKED,
            occurred_at=now,
            subject_id=request.subject_id,
            request_id=request.id,
            from_status=RequestStatus.PENDING,
            to_status=RequestStatus.PENDING,
            reason="review link unlocked by support",
            details={"failed_submissions": request.failed_submissions},
        )
    return unlocked


async def unlock_withdrawal_link(
    connection: Connection, runtime: Runtime, consent_id: uuid.UUID, *, actor: str
) -> Consent:
    """Unlock a live consent's locked withdrawal link before its lock runs out."""
    now = runtime.clock.now()
    async with connection.transaction():
        found = await consents_repo.get_consent(connection, consent_id)
        if found is None:
            raise NotFound("No consent with this id.")
        await locks.lock_subject(connection, found.subject_id)
        consent = await consents_repo.get_consent(connection, consent_id, for_update=True)
        if consent is None:
            raise NotFound("No consent with this id.")
        status = lifecycle.consent_status_at(consent.status, consent.expires_at, now)
        if status != ConsentStatus.GRANTED:
            raise Conflict(
                f"This consent is {status}: only a live consent's withdrawal link can be unlocked.",
                current_status=status,
            )
        if not withdrawal_link_locked(consent, runtime):
            raise Conflict("This consent's withdrawal link is not locked.", current_status=status)
        unlocked = await consents_repo.clear_failed_withdrawals(connection, consent_id)
        if unlocked is None:
            raise Conflict("The consent ended concurrently.")
        await record_event(
            connection,
            actor=actor,
            action=WITHDRAWAL_UNLOCKED,
            occurred_at=now,
            subject_id=consent.subject_id,
            request_id=consent.request_id,
            consent_id=consent.id,
            from_status=ConsentStatus.GRANTED,
            to_status=ConsentStatus.GRANTED,
            reason="withdrawal link unlocked by support",
        )
    return unlocked
