"""Rectification (GDPR Art. 16): a guardian's address, and a child's birth date.

A new guardian address is used only once a link sent to it has been confirmed: until then every
email and every lookup still goes to the old one. On confirmation the consent stays the same
consent (same id, same purposes, same end); its token is re-issued because it names the
guardian, and the old address is told of the change. It is never "replaced by another
guardian": that email is for a different guardian's grant.

A corrected birth date recomputes the age of consent and the consent's end; a child who needs
no guardian's consent at all ends the consent (``not_required``) and closes a pending request.
The birth date itself is kept only where the design keeps it: on a pending request.

Each correction is a tracked rights request (``rectification``), completed when it is done.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any, Literal

import msgspec

from service.consent import data_requests, lifecycle, notifications, policy, verification
from service.consent.errors import (
    Conflict,
    FormError,
    InvalidAddressChange,
    InvalidInput,
    LimitExceeded,
    LinkProblem,
    NotFound,
)
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import consents as consents_repo
from service.db import data_requests as data_requests_repo
from service.db import locks
from service.db import outbox as outbox_table
from service.db import rectification as repo
from service.db.audit_events import GUARDIAN_ACTOR, record_event
from service.db.connection import Connection
from service.db.consent_requests import ConsentRequest
from service.db.consents import Consent
from service.db.data_requests import DataRequest
from service.db.rectification import AddressChange
from service.db.signing_keys import register_signing_key
from service.delivery import emails, outbox
from service.i18n import DEFAULT_LOCALE
from service.security.email_address import EmailAddress, InvalidEmailAddress, parse_email_address
from service.security.personal_data import mask_email
from service.security.tokens import hash_link_token, new_link_token
from service.states import (
    ConsentStatus,
    DataRequestChannel,
    DataRequestKind,
    DataRequestStatus,
    LinkProblemReason,
    RequestStatus,
)

# How long the link to the new address works; unconfirmed, the new address is then deleted.
ADDRESS_CONFIRMATION_TTL = timedelta(hours=24)
# Address changes asked for one consent in a day: each mails a stranger's address otherwise.
ADDRESS_CHANGES_PER_DAY = 5
ADDRESS_CHANGED_OUTCOME = "guardian address changed after the new address confirmed it"
NOT_REQUIRED_REASON = "not_required"


class AddressChangeStarted(msgspec.Struct, frozen=True, kw_only=True):
    """A new address waits for its confirmation; nothing about the consent has changed yet."""

    address_change_id: uuid.UUID
    consent_id: uuid.UUID
    data_request_id: uuid.UUID
    status: Literal["awaiting_confirmation"]
    expires_at: datetime


class PendingAddress(msgspec.Struct, frozen=True, kw_only=True):
    """What the confirmation page shows: the new address masked, in the consent's language."""

    change: AddressChange
    consent: Consent
    locale: str
    masked_address: str


def _parse(raw: str) -> EmailAddress | None:
    try:
        return parse_email_address(raw)
    except InvalidEmailAddress:
        return None


async def _tracked_request(
    connection: Connection,
    runtime: Runtime,
    *,
    data_request_id: uuid.UUID | None,
    subject_id: str,
    channel: DataRequestChannel,
    actor: str,
    handler: str | None,
    now: datetime,
    events: list[dict[str, Any]],
) -> uuid.UUID:
    """The rectification request this correction answers: the one staff name (still open, of
    this subject), or a new one received now (its audit event added to ``events``)."""
    if data_request_id is not None:
        found = await data_requests_repo.get(connection, data_request_id, for_update=True)
        if found is None or found.subject_id != subject_id:
            raise NotFound("No data request with this id for this subject.")
        if found.kind != DataRequestKind.RECTIFICATION:
            raise InvalidInput(f"data_request_id: the request is of kind {found.kind}.")
        if found.status in data_requests.FINAL_STATUSES:
            raise Conflict(
                f"The data request is {found.status} already.", current_status=found.status
            )
        return found.id
    request_id = uuid.uuid4()
    await data_requests_repo.insert(
        connection,
        DataRequest(
            id=request_id,
            kind=DataRequestKind.RECTIFICATION,
            subject_id=subject_id,
            channel=channel,
            note_enc=None,
            received_at=now,
            due_at=data_requests.due_at(DataRequestKind.RECTIFICATION, now, runtime.settings),
            status=DataRequestStatus.OPEN,
            outcome=None,
            refusal_reason=None,
            handler=handler,
            created_at=now,
            updated_at=now,
            closed_at=None,
            erased_at=None,
        ),
    )
    events.append(
        {
            "actor": actor,
            "action": "data_request.opened",
            "occurred_at": now,
            "subject_id": subject_id,
            "to_status": DataRequestStatus.OPEN,
            "details": {
                "data_request_id": str(request_id),
                "kind": DataRequestKind.RECTIFICATION,
                "channel": channel,
            },
        }
    )
    return request_id


async def _record(connection: Connection, events: list[dict[str, Any]]) -> None:
    """The audit events, after every row and outbox message: ``record_event`` takes the chain
    lock, and it is taken last."""
    for event in events:
        await record_event(connection, **event)


async def _complete(
    connection: Connection,
    data_request_id: uuid.UUID,
    *,
    outcome: str,
    actor: str,
    handler: str | None,
    now: datetime,
    events: list[dict[str, Any]],
) -> None:
    """Close the rights request as done (unless staff closed it meanwhile)."""
    current = await data_requests_repo.get(connection, data_request_id, for_update=True)
    if current is None or current.status in data_requests.FINAL_STATUSES:
        return
    await data_requests_repo.update(
        connection,
        data_request_id,
        status=DataRequestStatus.DONE,
        outcome=outcome,
        refusal_reason=None,
        note_enc=current.note_enc,
        handler=handler or current.handler or actor,
        updated_at=now,
        closed_at=now,
    )
    events.append(
        {
            "actor": actor,
            "action": f"data_request.{DataRequestStatus.DONE}",
            "occurred_at": now,
            "subject_id": current.subject_id,
            "from_status": current.status,
            "to_status": DataRequestStatus.DONE,
            "details": {
                "data_request_id": str(data_request_id),
                "kind": current.kind,
                "on_time": now <= current.due_at,
            },
        }
    )


# ---- the guardian's address ------------------------------------------------------------------


async def start_address_change(
    connection: Connection,
    runtime: Runtime,
    consent_id: uuid.UUID,
    *,
    new_email: str,
    actor: str,
    channel: DataRequestChannel,
    data_request_id: uuid.UUID | None = None,
    handler: str | None = None,
) -> AddressChangeStarted:
    """Send the confirmation link to ``new_email`` for the live consent; nothing else changes
    until it is confirmed. An address that cannot be used raises ``InvalidAddressChange``."""
    now = runtime.clock.now()
    guardian = _parse(new_email)
    async with connection.transaction():
        unlocked = await consents_repo.get_consent(connection, consent_id)
        if unlocked is None:
            raise NotFound("No consent with this id.")
        await locks.lock_subject(connection, unlocked.subject_id)
        consent = await consents_repo.get_consent(connection, consent_id, for_update=True)
        assert consent is not None, "a consent row is never deleted under the subject lock"
        status = lifecycle.consent_status_at(consent.status, consent.expires_at, now)
        if status != ConsentStatus.GRANTED:
            raise Conflict(
                f"Only a live consent's guardian address can change; this one is {status}.",
                current_status=status,
            )
        if guardian is None:
            raise InvalidAddressChange(consent, [FormError.EMAIL_INVALID])
        if runtime.protector.guardian_reference(guardian.identity) == consent.guardian_ref:
            raise InvalidAddressChange(consent, [FormError.EMAIL_UNCHANGED])
        recent = await repo.changes_since(connection, consent.id, now - timedelta(days=1))
        if len(recent) >= ADDRESS_CHANGES_PER_DAY:
            raise LimitExceeded(
                f"At most {ADDRESS_CHANGES_PER_DAY} address changes per consent in 24 hours.",
                retry_after_seconds=(recent[0] + timedelta(days=1) - now).total_seconds(),
            )
        events: list[dict[str, Any]] = []
        tracked = await _tracked_request(
            connection,
            runtime,
            data_request_id=data_request_id,
            subject_id=consent.subject_id,
            channel=channel,
            actor=actor,
            handler=handler,
            now=now,
            events=events,
        )
        replaced = await repo.withdraw_waiting(connection, consent.id)
        change_id = uuid.uuid4()
        token = new_link_token()
        expires_at = now + ADDRESS_CONFIRMATION_TTL
        await repo.insert(
            connection,
            change_id=change_id,
            consent_id=consent.id,
            subject_id=consent.subject_id,
            data_request_id=tracked,
            new_email_enc=runtime.protector.encrypt(guardian.address.encode(), change_id.bytes),
            confirm_token_hash=hash_link_token(token),
            requested_by=actor,
            now=now,
            expires_at=expires_at,
        )
        locale = await _locale(connection, consent)
        await outbox.enqueue_email(
            connection,
            runtime.protector,
            topic="guardian_address_confirmation",
            subject_id=consent.subject_id,
            related_id=change_id,
            to=guardian.address,
            locale=locale,
            email=emails.render_address_confirmation_email(
                locale=locale,
                operator_name=runtime.settings.operator_name,
                confirm_url=runtime.link(f"/guardian/address/confirm/{token}"),
                expires_at=expires_at,
                timezone=policy.display_timezone(consent.jurisdiction),
            ),
            now=now,
        )
        events.append(
            {
                "actor": actor,
                "action": "guardian.address_change_requested",
                "occurred_at": now,
                "subject_id": consent.subject_id,
                "request_id": consent.request_id,
                "consent_id": consent.id,
                "details": {
                    "address_change_id": str(change_id),
                    "data_request_id": str(tracked),
                    "expires_at": expires_at.isoformat(),
                    "earlier_changes_withdrawn": replaced,
                },
            }
        )
        await _record(connection, events)
    return AddressChangeStarted(
        address_change_id=change_id,
        consent_id=consent.id,
        data_request_id=tracked,
        status="awaiting_confirmation",
        expires_at=expires_at,
    )


def _waiting_change(change: AddressChange, locale: str, now: datetime) -> AddressChange:
    """The change behind a confirmation link, if it may still be confirmed."""
    if change.confirmed_at is not None:
        raise LinkProblem(LinkProblemReason.ADDRESS_LINK_USED, locale=locale)
    if change.expires_at <= now:
        raise LinkProblem(LinkProblemReason.ADDRESS_LINK_EXPIRED, locale=locale)
    if change.new_email_enc is None:
        # a newer change for the same consent took its place
        raise LinkProblem(LinkProblemReason.ADDRESS_LINK_USED, locale=locale)
    return change


async def _change_and_consent(
    connection: Connection, token_hash: bytes, now: datetime, *, for_update: bool = False
) -> tuple[AddressChange, Consent, str]:
    """The waiting change behind a link, its live consent and the consent's language."""
    found = await repo.find_by_token(connection, token_hash, for_update=for_update)
    if found is None:
        raise LinkProblem(LinkProblemReason.UNKNOWN)
    consent = await consents_repo.get_consent(connection, found.consent_id, for_update=for_update)
    locale = await _locale(connection, consent)
    change = _waiting_change(found, locale, now)
    if consent is None or (
        lifecycle.consent_status_at(consent.status, consent.expires_at, now)
        != ConsentStatus.GRANTED
    ):
        raise LinkProblem(LinkProblemReason.NOT_LIVE, locale=locale)
    return change, consent, locale


async def _locale(connection: Connection, consent: Consent | None) -> str:
    found = await requests_repo.locale_of(connection, consent.request_id) if consent else None
    return found or DEFAULT_LOCALE


async def load_for_confirmation(
    connection: Connection, runtime: Runtime, token: str
) -> PendingAddress:
    """What the confirmation page shows; reading it changes nothing."""
    change, consent, locale = await _change_and_consent(
        connection, hash_link_token(token), runtime.clock.now()
    )
    assert change.new_email_enc is not None
    address = runtime.protector.decrypt(change.new_email_enc, change.id.bytes).decode()
    return PendingAddress(
        change=change, consent=consent, locale=locale, masked_address=mask_email(address)
    )


async def confirm_address_change(
    connection: Connection, runtime: Runtime, token: str
) -> PendingAddress:
    """The new address confirmed its link: the consent's request (and any request still
    pending for the same guardian) takes it, the consent's token is re-issued for the new
    guardian reference, the old address is told, the rights request is done."""
    now = runtime.clock.now()
    token_hash = hash_link_token(token)
    async with connection.transaction():
        unlocked = await repo.find_by_token(connection, token_hash)
        if unlocked is not None:
            await locks.lock_subject(connection, unlocked.subject_id)
        change, consent, locale = await _change_and_consent(
            connection, token_hash, now, for_update=True
        )
        request = await requests_repo.get_request(connection, consent.request_id)
        assert change.new_email_enc is not None
        assert request is not None
        new_address = runtime.protector.decrypt(change.new_email_enc, change.id.bytes).decode()
        guardian = parse_email_address(new_address)
        old_address = notifications.guardian_email(runtime, request)
        new_ref = runtime.protector.guardian_reference(guardian.identity)
        old_ref = consent.guardian_ref
        email_hash = runtime.protector.address_hashes(guardian)[0]
        # the consent's own request first, then any the same guardian has still to answer
        to_change = [request.id] + [
            pending
            for pending in await repo.pending_requests_of_guardian(
                connection, consent.subject_id, old_ref
            )
            if pending != request.id
        ]
        for request_id in to_change:
            await repo.set_guardian(
                connection,
                request_id=request_id,
                email_enc=runtime.protector.encrypt(guardian.address.encode(), request_id.bytes),
                email_hash=email_hash,
                guardian_ref=new_ref,
                now=now,
            )
        await register_signing_key(connection, runtime.signer, now)
        consent_token = _sign(runtime, consent, now, guardian_ref=new_ref)
        if not await repo.set_consent_guardian(
            connection, consent.id, guardian_ref=new_ref, token=consent_token, now=now
        ):
            raise LinkProblem(LinkProblemReason.NOT_LIVE, locale=locale)
        if not await repo.mark_confirmed(connection, change.id, now):
            raise LinkProblem(LinkProblemReason.ADDRESS_LINK_USED, locale=locale)
        if old_address is not None:
            await outbox.enqueue_email(
                connection,
                runtime.protector,
                topic="guardian_address_changed",
                subject_id=consent.subject_id,
                related_id=change.id,
                to=old_address,
                locale=locale,
                email=emails.render_address_changed_email(
                    locale=locale,
                    operator_name=runtime.settings.operator_name,
                    new_address=mask_email(guardian.address),
                    changed_at=now,
                    timezone=policy.display_timezone(consent.jurisdiction),
                ),
                now=now,
            )
        events: list[dict[str, Any]] = [
            {
                "actor": GUARDIAN_ACTOR,
                "action": "guardian.address_changed",
                "occurred_at": now,
                "subject_id": consent.subject_id,
                "request_id": consent.request_id,
                "consent_id": consent.id,
                "from_status": ConsentStatus.GRANTED,
                "to_status": ConsentStatus.GRANTED,
                "reason": "the new address confirmed the link sent to it",
                "details": {
                    "address_change_id": str(change.id),
                    "requested_by": change.requested_by,
                    "guardian": new_ref,
                    "previous_guardian": old_ref,
                    "requests_changed": len(to_change),
                },
            }
        ]
        if change.data_request_id is not None:
            await _complete(
                connection,
                change.data_request_id,
                outcome=ADDRESS_CHANGED_OUTCOME,
                actor=GUARDIAN_ACTOR,
                handler=None,
                now=now,
                events=events,
            )
        await _record(connection, events)
    return PendingAddress(
        change=change, consent=consent, locale=locale, masked_address=mask_email(new_address)
    )


def _sign(
    runtime: Runtime,
    consent: Consent,
    now: datetime,
    *,
    guardian_ref: str | None = None,
    expires_at: datetime | None = None,
    jurisdiction: str | None = None,
) -> str:
    """The consent's token re-issued with what changed; same consent id (``jti``)."""
    return runtime.signer.sign(
        consent_id=str(consent.id),
        subject_id=consent.subject_id,
        issued_at=now,
        expires_at=expires_at or consent.expires_at,
        purposes=consent.purposes,
        jurisdiction=jurisdiction or consent.jurisdiction,
        method=consent.method,
        purpose_methods=consent.purpose_methods,
        policy_version=consent.policy_version,
        guardian_ref=guardian_ref or consent.guardian_ref,
    )


async def forget_expired_address_changes(connection: Connection, runtime: Runtime) -> int:
    """The worker's sweep: a new address never confirmed is deleted when its link expires."""
    return await repo.forget_expired(connection, runtime.clock.now())


# ---- the child's birth date ------------------------------------------------------------------


class BirthDateCorrection(msgspec.Struct, frozen=True, kw_only=True):
    """What a corrected birth date changed. ``consent_required``: the child still needs a
    guardian's consent; if not, ``consent_status`` is ``not_required`` and a pending request
    was closed."""

    subject_id: str
    data_request_id: uuid.UUID
    consent_required: bool
    age_of_consent: int
    jurisdiction: str
    basis: str
    consent_id: uuid.UUID | None
    consent_status: ConsentStatus | None
    expires_at: datetime | None
    request_id: uuid.UUID | None
    request_status: RequestStatus | None


def _decide(birth_date: str, country: str, runtime: Runtime, now: datetime) -> policy.AgeDecision:
    try:
        return policy.decide_age(
            policy.parse_birth_date(birth_date), country, now, runtime.settings.min_age
        )
    except (policy.InvalidBirthDate, policy.UnknownCountry) as exc:
        raise InvalidInput(str(exc)) from None


async def _live_consent(connection: Connection, subject_id: str, now: datetime) -> Consent | None:
    """The subject's live consent, locked; None when it has none (or it has lapsed)."""
    consent_id = await repo.live_consent_id(connection, subject_id)
    consent = (
        await consents_repo.get_consent(connection, consent_id, for_update=True)
        if consent_id is not None
        else None
    )
    if consent is None or (
        lifecycle.consent_status_at(consent.status, consent.expires_at, now)
        != ConsentStatus.GRANTED
    ):
        return None
    return consent


def _refuse_if_rules_grow(
    runtime: Runtime,
    decision: policy.AgeDecision,
    request: ConsentRequest,
    purposes: list[str],
    now: datetime,
) -> None:
    """A consent given under one country's rules is not moved under stricter ones: where the
    child must consent too, or a purpose needs a stronger check, the app must ask again."""
    if decision.joint_consent and request.child_agreed is not True:
        raise Conflict(
            f"Under the rules of {decision.jurisdiction} the child consents together with the "
            "guardian, and this request carries no such agreement; open a new consent request."
        )
    stronger = verification.needs_stronger_method(
        runtime.catalogue.among(purposes), decision.jurisdiction, now
    )
    if stronger:
        raise Conflict(
            f"Under the rules of {decision.jurisdiction} the purpose(s) {', '.join(stronger)} "
            "need a stronger verification method; open a new consent request."
        )


async def correct_birth_date(
    connection: Connection,
    runtime: Runtime,
    subject_id: str,
    *,
    birth_date: str,
    country: str | None,
    data_request_id: uuid.UUID | None,
    channel: DataRequestChannel,
    staff: str,
) -> BirthDateCorrection:
    """Staff correct a child's birth date: the live consent's and the pending request's age
    of consent and end are recomputed; a child who needs no guardian's consent any more ends
    the consent (``not_required``) and closes the pending request (its address deleted)."""
    now = runtime.clock.now()
    actor = f"staff:{staff}"
    async with connection.transaction():
        await locks.lock_subject(connection, subject_id)
        pending_id = await requests_repo.pending_for_subject(connection, subject_id)
        pending = await requests_repo.get_request(connection, pending_id) if pending_id else None
        if pending is not None and (
            lifecycle.request_status_at(pending.status, pending.expires_at, now)
            != RequestStatus.PENDING
        ):
            pending = None
        consent = await _live_consent(connection, subject_id, now)
        if consent is None and pending is None:
            raise NotFound(
                "This subject has no live consent and no pending request whose birth date "
                "could be corrected."
            )
        consent_request = (
            await requests_repo.get_request(connection, consent.request_id) if consent else None
        )
        current = pending or consent_request
        assert current is not None
        decision = _decide(birth_date, country or current.country, runtime, now)
        if decision.consent_required:
            if consent is not None and consent_request is not None:
                _refuse_if_rules_grow(runtime, decision, consent_request, consent.purposes, now)
            if pending is not None:
                _refuse_if_rules_grow(runtime, decision, pending, pending.purposes, now)
        events: list[dict[str, Any]] = []
        tracked = await _tracked_request(
            connection,
            runtime,
            data_request_id=data_request_id,
            subject_id=subject_id,
            channel=channel,
            actor=actor,
            handler=staff,
            now=now,
            events=events,
        )
        consent_status: ConsentStatus | None = None
        expires_at: datetime | None = None
        request_status: RequestStatus | None = None
        if decision.consent_required:
            assert decision.consent_required_until is not None
            if pending is not None:
                await _recompute_request(
                    connection, pending, decision, policy.parse_birth_date(birth_date), now
                )
                request_status = RequestStatus.PENDING
            if consent is not None and consent_request is not None:
                expires_at = await _recompute_consent(
                    connection, runtime, consent, consent_request, decision, now
                )
                consent_status = ConsentStatus.GRANTED
        else:
            if pending is not None:
                events.append(await _close_pending(connection, runtime, pending, actor, now))
                request_status = RequestStatus.EXPIRED
            if consent is not None:
                events.append(await _end_not_required(connection, runtime, consent, actor, now))
                consent_status = ConsentStatus.NOT_REQUIRED
        events.append(
            {
                "actor": actor,
                "action": "subject.birth_date_corrected",
                "occurred_at": now,
                "subject_id": subject_id,
                "request_id": current.id,
                "consent_id": consent.id if consent else None,
                "reason": "a corrected birth date",
                "details": {
                    "data_request_id": str(tracked),
                    "consent_required": decision.consent_required,
                    "age_of_consent": decision.age_of_consent,
                    "jurisdiction": decision.jurisdiction,
                    "basis": decision.basis,
                    "previous_age_of_consent": current.age_of_consent,
                    "previous_jurisdiction": current.country,
                    **({"expires_at": expires_at.isoformat()} if expires_at else {}),
                },
            }
        )
        await _complete(
            connection,
            tracked,
            outcome=(
                "birth date corrected; age of consent and the consent's end recomputed"
                if decision.consent_required
                else "birth date corrected; the child needs no guardian's consent"
            ),
            actor=actor,
            handler=staff,
            now=now,
            events=events,
        )
        await _record(connection, events)
    return BirthDateCorrection(
        subject_id=subject_id,
        data_request_id=tracked,
        consent_required=decision.consent_required,
        age_of_consent=decision.age_of_consent,
        jurisdiction=decision.jurisdiction,
        basis=decision.basis,
        consent_id=consent.id if consent else None,
        consent_status=consent_status,
        expires_at=expires_at,
        request_id=pending.id if pending else None,
        request_status=request_status,
    )


async def _recompute_request(
    connection: Connection,
    request: ConsentRequest,
    decision: policy.AgeDecision,
    birth_date: date | None,
    now: datetime,
) -> None:
    assert decision.consent_required_until is not None
    await repo.set_request_age(
        connection,
        request.id,
        country=decision.jurisdiction,
        age_of_consent=decision.age_of_consent,
        basis=decision.basis,
        consent_required_until=decision.consent_required_until,
        joint_consent=decision.joint_consent,
        birth_date=birth_date if request.status == RequestStatus.PENDING else None,
        now=now,
    )


async def _recompute_consent(
    connection: Connection,
    runtime: Runtime,
    consent: Consent,
    request: ConsentRequest,
    decision: policy.AgeDecision,
    now: datetime,
) -> datetime:
    """The consent lapses when the child, by the corrected date, comes of age (or at its
    maximum validity, or an earlier re-consent deadline); same consent, re-issued token."""
    await _recompute_request(connection, request, decision, None, now)
    updated = await requests_repo.get_request(connection, request.id)
    assert updated is not None
    expires_at = lifecycle.consent_lapses_at(
        updated, consent.granted_at, runtime.settings.consent_max_validity
    )
    reconsent_due = await repo.reconsent_due_of(connection, consent.id)
    if reconsent_due is not None:
        expires_at = min(expires_at, reconsent_due)
    await register_signing_key(connection, runtime.signer, now)
    token = _sign(runtime, consent, now, expires_at=expires_at, jurisdiction=decision.jurisdiction)
    if not await repo.set_consent_expiry(
        connection,
        consent.id,
        jurisdiction=decision.jurisdiction,
        expires_at=expires_at,
        token=token,
        now=now,
    ):
        raise Conflict("The consent ended concurrently.")
    changed = await consents_repo.get_consent(connection, consent.id)
    assert changed is not None
    await notifications.consent_webhook(
        connection,
        runtime,
        changed,
        ConsentStatus.GRANTED,
        now,
        event_type="consent.updated",
        expires_at=expires_at.isoformat(),
        reason="birth_date_corrected",
    )
    return expires_at


async def _end_not_required(
    connection: Connection, runtime: Runtime, consent: Consent, actor: str, now: datetime
) -> dict[str, Any]:
    """No guardian's consent is needed: the consent ends, the app is told why. Returns the
    audit event to record."""
    ended = await consents_repo.end_consent(
        connection,
        consent.id,
        status=ConsentStatus.NOT_REQUIRED,
        reason=NOT_REQUIRED_REASON,
        now=now,
    )
    if ended is None:
        raise Conflict("The consent ended concurrently.")
    # a confirmation still queued would describe a consent that has ended
    await outbox_table.cancel_emails_for(connection, consent.id)
    await notifications.consent_webhook(
        connection, runtime, consent, ConsentStatus.NOT_REQUIRED, now, reason=NOT_REQUIRED_REASON
    )
    return {
        "actor": actor,
        "action": f"consent.{ConsentStatus.NOT_REQUIRED}",
        "occurred_at": now,
        "subject_id": consent.subject_id,
        "request_id": consent.request_id,
        "consent_id": consent.id,
        "from_status": ConsentStatus.GRANTED,
        "to_status": ConsentStatus.NOT_REQUIRED,
        "reason": "a corrected birth date shows the child needs no guardian's consent",
    }


async def _close_pending(
    connection: Connection, runtime: Runtime, request: ConsentRequest, actor: str, now: datetime
) -> dict[str, Any]:
    """A pending request that is no longer needed: closed, its guardian's address deleted.
    Returns the audit event to record."""
    if not await requests_repo.set_decision(connection, request.id, RequestStatus.EXPIRED, now):
        raise Conflict("The request was answered concurrently.")
    await requests_repo.forget_guardian(connection, request.id)
    await outbox_table.cancel_emails_for(connection, request.id)
    await notifications.webhook(
        connection,
        runtime,
        RequestStatus.EXPIRED,
        subject_id=request.subject_id,
        request_id=request.id,
        now=now,
        reason=NOT_REQUIRED_REASON,
    )
    return {
        "actor": actor,
        "action": "request.expired",
        "occurred_at": now,
        "subject_id": request.subject_id,
        "request_id": request.id,
        "from_status": RequestStatus.PENDING,
        "to_status": RequestStatus.EXPIRED,
        "reason": (
            "a corrected birth date shows the child needs no guardian's consent; "
            "guardian address deleted"
        ),
    }
