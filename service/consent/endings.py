"""How consents and requests end: withdrawn by the guardian, revoked by staff, lapsed, or
closed unanswered. A consent is never revived; a new one takes its place.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec

from service.consent import lifecycle, notifications
from service.consent.errors import (
    AlreadyEnded,
    Conflict,
    FormError,
    InvalidWithdrawal,
    LinkProblem,
    NotFound,
)
from service.consent.revocation_reasons import GuardianReason
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import consents as consents_repo
from service.db import idempotency_keys, locks, rectification
from service.db import outbox as outbox_table
from service.db.audit_events import GUARDIAN_ACTOR, SYSTEM_ACTOR, record_event
from service.db.connection import Connection
from service.db.consent_requests import ConsentRequest
from service.db.consents import Consent
from service.db.signing_keys import register_signing_key
from service.security.tokens import hash_link_token
from service.states import ConsentStatus, LinkProblemReason, RequestStatus

# Submissions a withdrawal link refuses (CSRF) before it locks, and for how long it locks. The
# lock lifts by itself: withdrawing must stay as easy as giving (GDPR Art. 7(3)).
MAX_FAILED_WITHDRAWALS = 5
WITHDRAWAL_LOCK = timedelta(hours=1)


class Withdrawal(msgspec.Struct, frozen=True, kw_only=True):
    """What a guardian's withdrawal did: ``ended`` the consent, or only ``withdrawn`` some of
    its purposes while the ``consent`` (as it now stands) stays live for the rest."""

    consent: Consent
    withdrawn: list[str]
    ended: bool


def live_consent(consent: Consent | None, now: datetime) -> Consent:
    """The consent behind a withdrawal link, if it is still live and its link not locked."""
    if consent is None:
        raise LinkProblem(LinkProblemReason.UNKNOWN)
    if lifecycle.consent_status_at(consent.status, consent.expires_at, now) != (
        ConsentStatus.GRANTED
    ):
        raise LinkProblem(LinkProblemReason.NOT_LIVE)
    locked_until = consent.withdraw_locked_until
    if locked_until is not None and locked_until > now:
        raise LinkProblem(
            LinkProblemReason.WITHDRAWAL_LOCKED,
            retry_after_seconds=(locked_until - now).total_seconds(),
        )
    return consent


async def strike_refused_withdrawal(connection: Connection, runtime: Runtime, token: str) -> None:
    """A submission the CSRF check refused counts against its withdrawal link; the fifth locks
    the link for ``WITHDRAWAL_LOCK``. Honest mistakes on the form never come here."""
    now = runtime.clock.now()
    locked_until = await consents_repo.count_failed_withdrawal(
        connection,
        hash_link_token(token),
        now=now,
        limit=MAX_FAILED_WITHDRAWALS,
        lock_for=WITHDRAWAL_LOCK,
    )
    if locked_until is not None:
        raise LinkProblem(
            LinkProblemReason.WITHDRAWAL_LOCKED,
            retry_after_seconds=(locked_until - now).total_seconds(),
        )


async def load_for_withdrawal(connection: Connection, runtime: Runtime, token: str) -> Consent:
    now = runtime.clock.now()
    consent = await consents_repo.find_by_withdraw_token(
        connection, hash_link_token(token), now=now
    )
    return live_consent(consent, now)


async def withdraw(connection: Connection, runtime: Runtime, token: str) -> Consent:
    """Withdraw the whole consent behind a withdrawal link."""
    withdrawal = await withdraw_purposes(connection, runtime, token, (), everything=True)
    return withdrawal.consent


def ends_consent(consent: Consent, withdrawn: Sequence[str], required: Sequence[str]) -> bool:
    """Withdrawing a required purpose, or every purpose, ends the consent altogether."""
    return any(p in required for p in withdrawn) or all(p in withdrawn for p in consent.purposes)


async def withdraw_purposes(
    connection: Connection,
    runtime: Runtime,
    token: str,
    chosen: Sequence[str],
    *,
    erase: bool = False,
    everything: bool = False,
) -> Withdrawal:
    """The guardian withdraws the ``chosen`` purposes (``everything``: all it covers). Only
    optional ones: the consent stays live for the rest, with a new token; a required one (or
    all): the consent ends.

    Checked and done under the subject lock, against the consent as it is then, so a racing
    revocation or withdrawal is never undone and a withdrawn purpose never comes back."""
    now = runtime.clock.now()
    token_hash = hash_link_token(token)
    async with connection.transaction():
        unlocked = await consents_repo.find_by_withdraw_token(connection, token_hash, now=now)
        if unlocked is not None:
            await locks.lock_subject(connection, unlocked.subject_id)
        consent = live_consent(
            await consents_repo.find_by_withdraw_token(
                connection, token_hash, for_update=True, now=now
            ),
            now,
        )
        own_link = await consents_repo.is_withdraw_token(connection, consent.id, token_hash)
        return await _withdraw_chosen(
            connection,
            runtime,
            consent,
            chosen,
            erase=erase,
            everything=everything,
            # a dashboard's short-lived link is never mailed: the dashboard is
            withdraw_url=runtime.link(f"/guardian/withdraw/{token}" if own_link else "/guardian"),
            now=now,
        )


async def withdraw_purposes_of_consent(
    connection: Connection,
    runtime: Runtime,
    consent_id: uuid.UUID,
    chosen: Sequence[str],
    *,
    erase: bool = False,
) -> Withdrawal:
    """``withdraw_purposes`` for a guardian signed in to the dashboard, whose ownership of the
    consent the caller has checked."""
    now = runtime.clock.now()
    async with connection.transaction():
        unlocked = await consents_repo.get_consent(connection, consent_id)
        if unlocked is not None:
            await locks.lock_subject(connection, unlocked.subject_id)
        consent = live_consent(
            await consents_repo.get_consent(connection, consent_id, for_update=True), now
        )
        return await _withdraw_chosen(
            connection,
            runtime,
            consent,
            chosen,
            erase=erase,
            everything=False,
            withdraw_url=runtime.link("/guardian"),
            now=now,
        )


async def _withdraw_chosen(
    connection: Connection,
    runtime: Runtime,
    consent: Consent,
    chosen: Sequence[str],
    *,
    erase: bool,
    everything: bool,
    withdraw_url: str,
    now: datetime,
) -> Withdrawal:
    """Called in the transaction that holds the subject's lock and the consent's row."""
    if everything:
        chosen = consent.purposes
    required = runtime.catalogue.required_ids
    withdrawn = [p for p in consent.purposes if p in chosen]
    errors = []
    if not chosen:
        errors.append(FormError.WITHDRAW_NONE)
    elif len(withdrawn) != len(set(chosen)):
        errors.append(FormError.PURPOSES)
    ending = bool(withdrawn) and ends_consent(consent, withdrawn, required)
    if erase and not ending and not errors:
        errors.append(FormError.ERASE_PARTIAL)
    if errors:
        raise InvalidWithdrawal(consent, errors)
    if ending:
        try:
            ended = await _end(
                connection,
                runtime,
                consent,
                status=ConsentStatus.WITHDRAWN,
                reason="withdrawn by the guardian",
                actor=GUARDIAN_ACTOR,
                now=now,
                erase=runtime.settings.withdrawal_erases,
            )
        except AlreadyEnded:
            raise LinkProblem(LinkProblemReason.NOT_LIVE) from None
        return Withdrawal(consent=ended, withdrawn=consent.purposes, ended=True)
    return await _withdraw_some(connection, runtime, consent, withdrawn, withdraw_url, now)


async def _withdraw_some(
    connection: Connection,
    runtime: Runtime,
    consent: Consent,
    withdrawn: list[str],
    withdraw_url: str,
    now: datetime,
) -> Withdrawal:
    """Same consent id, fewer purposes, and a new token that says so (the old one still
    verifies until it expires: only the check endpoint knows what is current)."""
    remaining = [p for p in consent.purposes if p not in withdrawn]
    await register_signing_key(connection, runtime.signer, now)
    token = runtime.signer.sign(
        consent_id=str(consent.id),
        subject_id=consent.subject_id,
        issued_at=now,
        expires_at=consent.expires_at,
        purposes=remaining,
        jurisdiction=consent.jurisdiction,
        method=consent.method,
        policy_version=consent.policy_version,
        guardian_ref=consent.guardian_ref,
    )
    updated = await consents_repo.withdraw_purposes(
        connection, consent.id, remaining=remaining, withdrawn=withdrawn, token=token, now=now
    )
    if updated is None:
        raise LinkProblem(LinkProblemReason.NOT_LIVE)
    await notifications.tell_purposes_withdrawn(
        connection,
        runtime,
        updated,
        withdrawn=withdrawn,
        withdraw_url=withdraw_url,
        now=now,
    )
    await notifications.purposes_withdrawn_webhook(connection, runtime, updated, withdrawn, now)
    await record_event(
        connection,
        actor=GUARDIAN_ACTOR,
        action="consent.purposes_withdrawn",
        occurred_at=now,
        subject_id=consent.subject_id,
        request_id=consent.request_id,
        consent_id=consent.id,
        from_status=ConsentStatus.GRANTED,
        to_status=ConsentStatus.GRANTED,
        reason="purposes withdrawn by the guardian",
        details={"withdrawn_purposes": withdrawn, "purposes": remaining},
    )
    return Withdrawal(consent=updated, withdrawn=withdrawn, ended=False)


async def revoke(
    connection: Connection,
    runtime: Runtime,
    consent_id: uuid.UUID,
    *,
    reason: str,
    staff: str,
    note: str | None = None,
    guardian_reason: GuardianReason | None = None,
) -> Consent:
    """Staff end a granted consent. ``reason`` (and ``note``) stay in the audit trail; the
    guardian reads ``guardian_reason`` (``service.consent.revocation_reasons``)."""
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
                guardian_reason=guardian_reason,
                note=note,
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
    erase: bool = False,
    guardian_reason: GuardianReason | None = None,
    note: str | None = None,
) -> Consent:
    ended = await consents_repo.end_consent(
        connection, consent.id, status=status, reason=reason, now=now
    )
    if ended is None:
        raise AlreadyEnded
    await notifications.tell_consent_ended(
        connection,
        runtime,
        consent,
        status=status,
        now=now,
        erased=erase,
        guardian_reason=guardian_reason,
    )
    await notifications.consent_webhook(connection, runtime, consent, status, now)
    if erase:
        await _erase_withdrawn(connection, runtime, consent, now)
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
        details={"guardian_reason": guardian_reason.wire} if guardian_reason else None,
    )
    if note:
        # Its own line in the trail, so whoever reads the case later sees it.
        await record_event(
            connection,
            actor=actor,
            action="consent.note",
            occurred_at=now,
            subject_id=consent.subject_id,
            request_id=consent.request_id,
            consent_id=consent.id,
            reason=note,
        )
    if erase:
        await record_event(
            connection,
            actor=actor,
            action="consent.erased",
            occurred_at=now,
            subject_id=consent.subject_id,
            request_id=consent.request_id,
            consent_id=consent.id,
            from_status=status,
            to_status=status,
            reason=WITHDRAWAL_ERASURE_REASON,
        )
    return ended


WITHDRAWAL_ERASURE_REASON = "erased on withdrawal; the app was asked to delete the child's data"


async def _erase_withdrawn(
    connection: Connection, runtime: Runtime, consent: Consent, now: datetime
) -> None:
    """After a full withdrawal (``CONSENT_WITHDRAWAL_ERASES``), delete what was held only for
    this consent and keep the pseudonymous evidence that it was given and withdrawn (GDPR Art.
    7(1), 17(3)(e)): the consent and request records without address, lookup hash, consent
    token or birth date, and the audit events.

    The withdrawal email just queued carries its own encrypted copy of the address; the outbox
    drops it, and every message's subject id, once the message is finished."""
    await notifications.subject_erasure_requested_webhook(connection, runtime, consent, now)
    await requests_repo.erase_after_withdrawal(connection, consent.request_id)
    await consents_repo.erase_after_withdrawal(connection, consent.id, now)
    await idempotency_keys.delete_for_subject(connection, consent.subject_id)
    await rectification.delete_for_consents(connection, [consent.id])
    await outbox_table.scrub_subject(connection, consent.subject_id)


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
