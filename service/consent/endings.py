"""How consents and requests end: withdrawn by the guardian, revoked by staff, lapsed, or
closed unanswered. A consent is never revived; a new one takes its place.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from service.consent import lifecycle, notifications
from service.consent.errors import AlreadyEnded, Conflict, LinkProblem, NotFound
from service.consent.runtime import Runtime
from service.db import consents as consents_repo
from service.db import locks
from service.db import outbox as outbox_table
from service.db.audit_events import GUARDIAN_ACTOR, SYSTEM_ACTOR, record_event
from service.db.connection import Connection
from service.db.consent_requests import ConsentRequest
from service.db.consents import Consent
from service.security.tokens import hash_link_token
from service.states import ConsentStatus, LinkProblemReason, RequestStatus


def live_consent(consent: Consent | None, now: datetime) -> Consent:
    """The consent behind a withdrawal link, if it is still live."""
    if consent is None:
        raise LinkProblem(LinkProblemReason.UNKNOWN)
    if lifecycle.consent_status_at(consent.status, consent.expires_at, now) != (
        ConsentStatus.GRANTED
    ):
        raise LinkProblem(LinkProblemReason.NOT_LIVE)
    return consent


async def load_for_withdrawal(connection: Connection, runtime: Runtime, token: str) -> Consent:
    consent = await consents_repo.find_by_withdraw_token(connection, hash_link_token(token))
    return live_consent(consent, runtime.clock.now())


async def withdraw(connection: Connection, runtime: Runtime, token: str) -> Consent:
    now = runtime.clock.now()
    token_hash = hash_link_token(token)
    async with connection.transaction():
        unlocked = await consents_repo.find_by_withdraw_token(connection, token_hash)
        if unlocked is not None:
            await locks.lock_subject(connection, unlocked.subject_id)
        found = live_consent(
            await consents_repo.find_by_withdraw_token(connection, token_hash, for_update=True),
            now,
        )
        try:
            return await _end(
                connection,
                runtime,
                found,
                status=ConsentStatus.WITHDRAWN,
                reason="withdrawn by the guardian",
                actor=GUARDIAN_ACTOR,
                now=now,
            )
        except AlreadyEnded:
            raise LinkProblem(LinkProblemReason.NOT_LIVE) from None


async def revoke(
    connection: Connection,
    runtime: Runtime,
    consent_id: uuid.UUID,
    *,
    reason: str,
    staff: str,
) -> Consent:
    now = runtime.clock.now()
    async with connection.transaction():
        unlocked = await consents_repo.get_consent(connection, consent_id)
        if unlocked is None:
            raise NotFound("No consent with this id.")
        await locks.lock_subject(connection, unlocked.subject_id)
        consent = await consents_repo.get_consent(connection, consent_id, for_update=True)
        if consent is None:
            raise NotFound("No consent with this id.")
        status = lifecycle.consent_status_at(consent.status, consent.expires_at, now)
        if status != consent.status:
            raise Conflict(
                "This consent has lapsed and can no longer be revoked.", current_status=status
            )
        if status != ConsentStatus.GRANTED:
            raise Conflict(
                f"Only a granted consent can be revoked; this one is {status}.",
                current_status=status,
            )
        try:
            return await _end(
                connection,
                runtime,
                consent,
                status=ConsentStatus.REVOKED,
                reason=reason,
                actor=f"staff:{staff}",
                now=now,
            )
        except AlreadyEnded:
            raise Conflict("The consent ended concurrently.") from None


RECONSENT_REFUSED_REASON = "the guardian refused consent under the changed notice"


async def end_refused_reconsent(
    connection: Connection, runtime: Runtime, consent_id: uuid.UUID, now: datetime
) -> None:
    """A guardian who refuses a re-consent request withdraws the consent it would renew.

    Runs inside the refusal's transaction, which holds the subject's lock and the request row.
    """
    consent = await consents_repo.get_consent(connection, consent_id, for_update=True)
    if consent is None:
        return
    if lifecycle.consent_status_at(consent.status, consent.expires_at, now) != (
        ConsentStatus.GRANTED
    ):
        return
    try:
        await _end(
            connection,
            runtime,
            consent,
            status=ConsentStatus.WITHDRAWN,
            reason=RECONSENT_REFUSED_REASON,
            actor=GUARDIAN_ACTOR,
            now=now,
        )
    except AlreadyEnded:
        return


async def _end(
    connection: Connection,
    runtime: Runtime,
    consent: Consent,
    *,
    status: ConsentStatus,
    reason: str,
    actor: str,
    now: datetime,
) -> Consent:
    ended = await consents_repo.end_consent(
        connection, consent.id, status=status, reason=reason, now=now
    )
    if ended is None:
        raise AlreadyEnded
    await notifications.tell_consent_ended(
        connection, runtime, consent, status=status, reason=reason, now=now
    )
    await notifications.consent_webhook(connection, runtime, consent, status, now)
    await record_event(
        connection,
        actor=actor,
        action=f"consent.{status}",
        occurred_at=now,
        subject_id=consent.subject_id,
        request_id=consent.request_id,
        consent_id=consent.id,
        from_status=ConsentStatus.GRANTED,
        to_status=status,
        reason=reason,
    )
    return ended


async def consent_lapsed(
    connection: Connection, runtime: Runtime, consent: Consent, now: datetime
) -> None:
    """What follows a lapse written down (by a sweep, or by a grant that replaces it)."""
    await lapse_side_effects(connection, runtime, consent, now)
    await record_consent_ended(connection, consent, actor=SYSTEM_ACTOR, now=now)


async def lapse_side_effects(
    connection: Connection, runtime: Runtime, consent: Consent, now: datetime
) -> None:
    """The messages of a lapse: no more emails about it, and the app's webhook."""
    # a confirmation still queued would describe a consent that has ended
    await outbox_table.cancel_emails_for(connection, consent.id)
    await notifications.consent_webhook(connection, runtime, consent, ConsentStatus.EXPIRED, now)


async def record_consent_ended(
    connection: Connection, consent: Consent, *, actor: str, now: datetime
) -> None:
    """The audit event of a consent that ended as its row now says (lapsed or superseded)."""
    await record_event(
        connection,
        actor=actor,
        action=f"consent.{consent.status}",
        occurred_at=now,
        subject_id=consent.subject_id,
        request_id=consent.request_id,
        consent_id=consent.id,
        from_status=ConsentStatus.GRANTED,
        to_status=consent.status,
        reason=consent.end_reason,
    )


async def request_closed_unanswered(
    connection: Connection,
    runtime: Runtime,
    request: ConsentRequest,
    now: datetime,
    *,
    reason: str,
) -> None:
    """What follows a request closing unanswered: no more emails, a webhook, the event."""
    await outbox_table.cancel_emails_for(connection, request.id)
    await notifications.webhook(
        connection,
        runtime,
        RequestStatus.EXPIRED,
        subject_id=request.subject_id,
        request_id=request.id,
        now=now,
    )
    await record_event(
        connection,
        actor=SYSTEM_ACTOR,
        action="request.expired",
        occurred_at=now,
        subject_id=request.subject_id,
        request_id=request.id,
        from_status=RequestStatus.PENDING,
        to_status=RequestStatus.EXPIRED,
        reason=reason,
    )
