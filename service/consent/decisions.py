"""The guardian's decision: reviewing a request through its link, then granting or denying.

Exactly one decision per request, ever: each is a conditional update (only from pending), its
audit events and its outbox messages in one transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import msgspec

from service.consent import endings, lifecycle, notifications, verification
from service.consent import notice as notices
from service.consent.errors import FormError, InvalidSubmission, LinkProblem
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import consents as consents_repo
from service.db import locks
from service.db import outbox as outbox_table
from service.db.audit_events import GUARDIAN_ACTOR, SYSTEM_ACTOR, record_event
from service.db.connection import Connection
from service.db.consent_requests import ConsentRequest
from service.db.signing_keys import register_signing_key
from service.security.tokens import hash_link_token, new_link_token
from service.states import ConsentStatus, LinkProblemReason, RequestStatus, VerificationMethod

MAX_FAILED_SUBMISSIONS = 5
METHOD_EMAIL_PLUS = VerificationMethod.EMAIL_PLUS


class GuardianDecision(StrEnum):
    """The two buttons of the review form."""

    GRANT = "grant"
    DENY = "deny"


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    outcome: RequestStatus
    request: ConsentRequest
    granted: list[str]
    refused: list[str]
    withdraw_token: str | None = None


def usable_request(request: ConsentRequest | None, now: datetime) -> ConsentRequest:
    """The request behind a review link, if the guardian may still decide it."""
    if request is None:
        raise LinkProblem(LinkProblemReason.UNKNOWN)
    locale = request.locale
    status = lifecycle.request_status_at(request.status, request.expires_at, now)
    if status == RequestStatus.EXPIRED:
        raise LinkProblem(LinkProblemReason.EXPIRED, locale=locale)
    if status == RequestStatus.CANCELLED:
        reason = (
            LinkProblemReason.CANCELLED
            if request.cancelled_by_app
            else LinkProblemReason.SUPERSEDED
        )
        raise LinkProblem(reason, locale=locale)
    if status != RequestStatus.PENDING:
        raise LinkProblem(LinkProblemReason.USED, locale=locale)
    if request.failed_submissions >= MAX_FAILED_SUBMISSIONS:
        raise link_locked(request, now)
    return request


def link_locked(request: ConsentRequest, now: datetime) -> LinkProblem:
    """Too many invalid forms: the link stays locked until it expires."""
    return LinkProblem(
        LinkProblemReason.LOCKED,
        locale=request.locale,
        retry_after_seconds=(request.expires_at - now).total_seconds(),
    )


async def load_for_review(connection: Connection, runtime: Runtime, token: str) -> ConsentRequest:
    now = runtime.clock.now()
    request = usable_request(
        await requests_repo.find_by_link_token(connection, hash_link_token(token)), now
    )
    if lifecycle.came_of_age(request, now):
        # Only said here; a GET changes nothing. The next POST closes the request.
        raise LinkProblem(LinkProblemReason.NOT_REQUIRED, locale=request.locale)
    return request


async def record_failed_submission(connection: Connection, request_id: uuid.UUID) -> int | None:
    """Count a refused submission; None when the request is no longer pending (decided,
    erased)."""
    return await requests_repo.count_failed_submission(connection, request_id)


async def strike_refused_submission(connection: Connection, runtime: Runtime, token: str) -> None:
    """A submission the CSRF check refused counts against its review link; the fifth locks it.

    Only those count: a forged or replayed form is what the limit is for. An honest mistake
    on the form (no attestation, no decision) is shown again and never counts."""
    now = runtime.clock.now()
    request = await requests_repo.find_by_link_token(connection, hash_link_token(token))
    if request is None or lifecycle.request_status_at(request.status, request.expires_at, now) != (
        RequestStatus.PENDING
    ):
        return
    failures = await record_failed_submission(connection, request.id)
    if failures is not None and failures >= MAX_FAILED_SUBMISSIONS:
        raise link_locked(request, now)


async def decide(
    connection: Connection,
    runtime: Runtime,
    *,
    token: str,
    decision: str,
    chosen: list[str],
    attested: bool,
    notice_shown: str | None = None,
) -> Decision:
    """Record the guardian's grant or denial; exactly one decision per request, ever.

    ``notice_shown``: the notice version the review page showed (its form says); a grant under
    a notice that has changed since is refused, and the page shown again with the current one.
    """
    now = runtime.clock.now()
    token_hash = hash_link_token(token)
    async with connection.transaction():
        found = await requests_repo.find_by_link_token(connection, token_hash)
        if found is not None:
            await locks.lock_subject(connection, found.subject_id)
        request = usable_request(
            await requests_repo.find_by_link_token(connection, token_hash, for_update=True),
            now,
        )
        if not lifecycle.came_of_age(request, now):
            # Disabled on the page; a form that ticks one anyway was not made by the page.
            beyond_method = verification.needs_stronger_method(
                runtime.catalogue.among(request.purposes), request.country, now
            )
            errors = _submission_errors(request, decision, chosen, attested, beyond_method)
            current = runtime.notice(request.locale).version
            if decision == GuardianDecision.GRANT and notice_shown not in (None, current):
                errors.append(FormError.NOTICE_CHANGED)
            if errors:
                raise InvalidSubmission(request, errors)
            granted = (
                [p for p in request.purposes if p in chosen and p not in beyond_method]
                if decision == GuardianDecision.GRANT
                else []
            )
            required = [p for p in request.purposes if p in runtime.catalogue.required_ids]
            if decision == GuardianDecision.GRANT and all(p in granted for p in required):
                return await _grant(connection, runtime, request, granted, now)
            return await _deny(connection, runtime, request, now)
        await _close_no_longer_needed(connection, runtime, request, now)
    # Raised after the commit: raising inside the transaction would roll the closing back.
    raise LinkProblem(LinkProblemReason.NOT_REQUIRED, locale=request.locale)


async def _close_no_longer_needed(
    connection: Connection, runtime: Runtime, request: ConsentRequest, now: datetime
) -> None:
    """The child reached the age of consent while the request waited: nothing to decide."""
    if not await requests_repo.set_decision(connection, request.id, RequestStatus.EXPIRED, now):
        raise LinkProblem(LinkProblemReason.USED)
    await requests_repo.forget_guardian(connection, request.id)
    await endings.request_closed_unanswered(
        connection,
        runtime,
        request,
        now,
        reason="the child reached the age of consent before the guardian decided",
    )


def _submission_errors(
    request: ConsentRequest,
    decision: str,
    chosen: list[str],
    attested: bool,
    beyond_method: list[str],
) -> list[FormError]:
    errors: list[FormError] = []
    if decision not in set(GuardianDecision):
        errors.append(FormError.DECISION)
    if any(p not in request.purposes for p in chosen):
        errors.append(FormError.PURPOSES)
    if decision == GuardianDecision.GRANT and any(p in beyond_method for p in chosen):
        errors.append(FormError.METHOD_TOO_WEAK)
    if decision == GuardianDecision.GRANT and not attested:
        errors.append(FormError.ATTESTATION)
    return errors


async def _grant(
    connection: Connection,
    runtime: Runtime,
    request: ConsentRequest,
    granted: list[str],
    now: datetime,
) -> Decision:
    # Lock order in every transaction: subject advisory lock, then rows (requests before
    # consents), then last the audit chain lock in record_event.
    await register_signing_key(connection, runtime.signer, now)
    if not await requests_repo.set_decision(connection, request.id, RequestStatus.GRANTED, now):
        raise LinkProblem(LinkProblemReason.USED)
    # a reminder still queued would ask for a decision already made
    await outbox_table.cancel_emails_for(connection, request.id)
    # The notice the review page showed: the one the guardian consented under (it is the
    # request's, unless the notice changed since the email was sent).
    notice = runtime.notice(request.locale)
    await notices.record_use(connection, notice, now)
    # The previous live consent ends here: replaced, or (lapsed but not yet swept) expired.
    # At most one: a subject has one live consent.
    previous = await consents_repo.supersede_live(connection, request.subject_id, now)
    consent_id = uuid.uuid4()
    expires_at = lifecycle.consent_lapses_at(request, now, runtime.settings.consent_max_validity)
    purpose_methods = verification.purpose_methods(granted)
    token = runtime.signer.sign(
        consent_id=str(consent_id),
        subject_id=request.subject_id,
        issued_at=now,
        expires_at=expires_at,
        purposes=granted,
        jurisdiction=request.country,
        method=METHOD_EMAIL_PLUS,
        purpose_methods=purpose_methods,
        policy_version=notice.version,
        guardian_ref=request.guardian_ref,
    )
    withdraw_token = new_link_token()
    await consents_repo.insert_consent(
        connection,
        consent_id=consent_id,
        request_id=request.id,
        subject_id=request.subject_id,
        purposes=granted,
        jurisdiction=request.country,
        method=METHOD_EMAIL_PLUS,
        purpose_methods=purpose_methods,
        policy_version=notice.version,
        guardian_ref=request.guardian_ref,
        granted_at=now,
        expires_at=expires_at,
        token=token,
        withdraw_token_hash=hash_link_token(withdraw_token),
    )
    refused = [p for p in request.purposes if p not in granted]
    await notifications.confirm_grant(
        connection,
        runtime,
        request,
        consent_id=consent_id,
        granted=granted,
        refused=refused,
        withdraw_token=withdraw_token,
        now=now,
        expires_at=expires_at,
    )
    await notifications.webhook(
        connection,
        runtime,
        ConsentStatus.GRANTED,
        subject_id=request.subject_id,
        request_id=request.id,
        consent_id=consent_id,
        purposes=granted,
        now=now,
        expires_at=expires_at.isoformat(),
    )
    # Every outbox row before the first audit event: record_event takes the chain lock last.
    for old_consent in previous:
        if old_consent.status == ConsentStatus.SUPERSEDED:
            await notifications.tell_replaced_guardian(
                connection, runtime, old_consent, request, now
            )
        else:
            await endings.lapse_side_effects(connection, runtime, old_consent, now)
    for old_consent in previous:
        superseded = old_consent.status == ConsentStatus.SUPERSEDED
        await endings.record_consent_ended(
            connection, old_consent, actor=GUARDIAN_ACTOR if superseded else SYSTEM_ACTOR, now=now
        )
    await record_event(
        connection,
        actor=GUARDIAN_ACTOR,
        action="consent.granted",
        occurred_at=now,
        subject_id=request.subject_id,
        request_id=request.id,
        consent_id=consent_id,
        from_status=RequestStatus.PENDING,
        to_status=ConsentStatus.GRANTED,
        details={
            "purposes": granted,
            "refused": refused,
            "method": METHOD_EMAIL_PLUS,
            "purpose_methods": purpose_methods,
            "attestation": "parental responsibility affirmed",
            **({"child_agreed": request.child_agreed} if request.child_agreed is not None else {}),
            "policy_version": notice.version,
            "guardian": request.guardian_ref,
            "expires_at": expires_at.isoformat(),
        },
    )
    return Decision(
        outcome=RequestStatus.GRANTED,
        request=request,
        granted=granted,
        refused=refused,
        withdraw_token=withdraw_token,
    )


async def _deny(
    connection: Connection, runtime: Runtime, request: ConsentRequest, now: datetime
) -> Decision:
    if not await requests_repo.set_decision(connection, request.id, RequestStatus.DENIED, now):
        raise LinkProblem(LinkProblemReason.USED)
    await outbox_table.cancel_emails_for(connection, request.id)
    await notifications.webhook(
        connection,
        runtime,
        RequestStatus.DENIED,
        subject_id=request.subject_id,
        request_id=request.id,
        now=now,
    )
    if request.reconsent_of is not None:
        # Refusing consent under the changed notice ends the consent given under the old one
        # at once: nothing is used any longer against the guardian's stated will.
        await endings.end_refused_reconsent(connection, runtime, request.reconsent_of, now)
    await record_event(
        connection,
        actor=GUARDIAN_ACTOR,
        action="request.denied",
        occurred_at=now,
        subject_id=request.subject_id,
        request_id=request.id,
        from_status=RequestStatus.PENDING,
        to_status=RequestStatus.DENIED,
        details={"refused": request.purposes, "policy_version": request.policy_version},
    )
    return Decision(
        outcome=RequestStatus.DENIED, request=request, granted=[], refused=request.purposes
    )
