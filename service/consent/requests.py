"""Opening a consent request: the age decision, validation, limits and idempotency.

One transaction: the request row, the email to the guardian, the stored idempotent answer and
the audit events commit together or not at all.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec

from service.consent import handoff, notifications, policy
from service.consent import notice as notices
from service.consent.errors import Conflict, InvalidInput, LimitExceeded
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import idempotency_keys, locks
from service.db import outbox as outbox_table
from service.db.audit_events import record_event
from service.db.connection import Connection
from service.i18n import DEFAULT_LOCALE, LOCALES, shipped_locale
from service.security.email_address import EmailAddress, InvalidEmailAddress, parse_email_address
from service.security.tokens import hash_link_token, new_link_token
from service.states import CreatedStatus, RequestStatus

GUARDIAN_REQUESTS_PER_DAY = policy.GUARDIAN_REQUESTS_PER_DAY
# Enough for a username or a first name, too short for a message to the guardian.
CHILD_HINT_MAX_LENGTH = 64


class NewRequest(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    birth_date: str
    country: str
    # None: only the handoff reaches the parent (the code on the child's screen)
    guardian_email: str | None = None
    purposes: list[str]
    locale: str | None = None
    # The app's attestation that the child agreed too, where the law asks for joint consent.
    child_agreed: bool | None = None
    # What tells the guardian which account this is about (e.g. the username the child chose).
    child_hint: str | None = None


class RequestCreated(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    subject_id: str
    status: CreatedStatus
    expires_at: datetime
    handoff: handoff.HandoffOffer


class NotRequired(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    status: CreatedStatus
    age: int
    age_of_consent: int
    jurisdiction: str
    basis: str


class CreateOutcome(msgspec.Struct, frozen=True, kw_only=True):
    status_code: int
    body: dict[str, Any]


def request_hash(runtime: Runtime, body: NewRequest) -> bytes:
    # Keyed: a plain hash of a body with an email and a birth date could be brute-forced.
    fields = msgspec.structs.asdict(body)
    if fields["child_agreed"] is None:
        # a body without it hashes as it did before the field existed, so a retry of a
        # request made before an upgrade still replays
        del fields["child_agreed"]
    if fields["child_hint"] is None:
        del fields["child_hint"]
    if fields["guardian_email"] is None:
        del fields["guardian_email"]
    return runtime.protector.lookup_hash(msgspec.json.encode(fields).decode())


async def create_request(
    connection: Connection,
    runtime: Runtime,
    *,
    body: NewRequest,
    api_key_id: uuid.UUID,
    api_key_name: str,
    idempotency_key: str | None,
) -> CreateOutcome:
    now = runtime.clock.now()
    decision = _decide_age(body, runtime, now)
    guardian = _validate_email(body.guardian_email) if body.guardian_email is not None else None
    purposes = _validate_purposes(body.purposes, runtime)
    locale = _validate_locale(body.locale)
    child_hint = validate_child_hint(body.child_hint)
    if not decision.consent_required:
        # Nothing is stored about a child who may consent alone.
        return CreateOutcome(
            status_code=200,
            body=msgspec.to_builtins(
                NotRequired(
                    subject_id=body.subject_id,
                    status=CreatedStatus.NOT_REQUIRED,
                    age=decision.age,
                    age_of_consent=decision.age_of_consent,
                    jurisdiction=decision.jurisdiction,
                    basis=decision.basis,
                )
            ),
        )
    assert decision.consent_required_until is not None
    if decision.joint_consent and body.child_agreed is not True:
        raise InvalidInput(
            f"child_agreed: must be true for a child of {decision.jurisdiction}, where the child "
            f"consents together with the guardian ({decision.joint_consent_basis}); send it once "
            "the child has agreed in your signup flow."
        )

    fingerprint = request_hash(runtime, body)
    notice = runtime.notice(locale)
    async with connection.transaction():
        if idempotency_key is not None:
            await locks.lock_idempotency_key(connection, api_key_id, idempotency_key)
            replay = await _idempotent_replay(connection, api_key_id, idempotency_key, fingerprint)
            if replay is not None:
                return await _with_new_handoff_code(
                    connection, runtime, replay, api_key_name=api_key_name, now=now
                )
        await locks.lock_subject(connection, body.subject_id)
        email_hash: bytes | None = None
        if guardian is not None:
            # One mailbox, one limit: the hash is of the address without case or +tag.
            email_hashes = runtime.protector.address_hashes(guardian)
            email_hash = email_hashes[0]
            await locks.lock_guardian(connection, email_hash)
            recent = await requests_repo.recent_requests_for_guardian(
                connection, email_hashes, now - timedelta(days=1)
            )
            if len(recent) >= GUARDIAN_REQUESTS_PER_DAY:
                wait = recent[0] + timedelta(days=1) - now
                raise LimitExceeded(
                    f"At most {GUARDIAN_REQUESTS_PER_DAY} consent requests per guardian email "
                    "address in 24 hours.",
                    retry_after_seconds=wait.total_seconds(),
                )
        cancelled = await requests_repo.cancel_pending_for_subject(connection, body.subject_id, now)
        for old_request in cancelled:
            await outbox_table.cancel_emails_for(connection, old_request)

        request_id = uuid.uuid4()
        link_token = new_link_token()
        expires_at = now + timedelta(seconds=runtime.settings.request_ttl)
        await requests_repo.insert_request(
            connection,
            request_id=request_id,
            subject_id=body.subject_id,
            country=decision.jurisdiction,
            age_of_consent=decision.age_of_consent,
            basis=decision.basis,
            birth_date=policy.parse_birth_date(body.birth_date),
            consent_required_until=decision.consent_required_until,
            guardian_email_enc=(
                runtime.protector.encrypt(guardian.address.encode(), request_id.bytes)
                if guardian is not None
                else None
            ),
            guardian_email_hash=email_hash,
            # Without an address, a reference to nobody until the parent's own is confirmed
            # through the handoff (it contains no "@", so it is no address's reference).
            guardian_ref=runtime.protector.guardian_reference(
                guardian.identity if guardian is not None else f"handoff:{request_id}"
            ),
            purposes=purposes,
            locale=locale,
            policy_version=notice.version,
            link_token_hash=hash_link_token(link_token),
            api_key_id=api_key_id,
            now=now,
            expires_at=expires_at,
            joint_consent=decision.joint_consent,
            child_agreed=body.child_agreed,
            child_hint_enc=encrypt_child_hint(runtime, request_id, child_hint),
        )
        await notices.record_use(connection, notice, now)
        if guardian is not None:
            await notifications.ask_guardian(
                connection,
                runtime,
                notice=notice,
                request_id=request_id,
                subject_id=body.subject_id,
                email=guardian.address,
                locale=locale,
                link_token=link_token,
                purposes=purposes,
                country=decision.jurisdiction,
                expires_at=expires_at,
                now=now,
                child_hint=child_hint,
            )
        offer = await handoff.offer(
            connection, runtime, request_id=request_id, now=now, request_expires_at=expires_at
        )
        created = RequestCreated(
            id=request_id,
            subject_id=body.subject_id,
            status=CreatedStatus.PENDING,
            expires_at=expires_at,
            handoff=offer,
        )
        outcome = CreateOutcome(status_code=201, body=msgspec.to_builtins(created))
        if idempotency_key is not None:
            # The handoff code only as its hash: a replay gets a new code instead
            # (``_with_new_handoff_code``).
            stored = {
                **outcome.body,
                "handoff": {k: v for k, v in outcome.body["handoff"].items() if k != "code"},
            }
            await idempotency_keys.insert(
                connection,
                api_key_id=api_key_id,
                key=idempotency_key,
                request_hash=fingerprint,
                status_code=outcome.status_code,
                response=stored,
                subject_id=body.subject_id,
                now=now,
            )
        for old_request in cancelled:
            await record_event(
                connection,
                actor=f"app:{api_key_name}",
                action="request.superseded",
                occurred_at=now,
                subject_id=body.subject_id,
                request_id=old_request,
                from_status=RequestStatus.PENDING,
                to_status=RequestStatus.CANCELLED,
                reason="a newer consent request for the same subject",
            )
        await record_event(
            connection,
            actor=f"app:{api_key_name}",
            action="request.created",
            occurred_at=now,
            subject_id=body.subject_id,
            request_id=request_id,
            to_status=RequestStatus.PENDING,
            details={
                "purposes": purposes,
                "jurisdiction": decision.jurisdiction,
                "age_of_consent": decision.age_of_consent,
                "basis": decision.basis,
                "policy_version": notice.version,
                "locale": locale,
                "channels": ["email", "handoff"] if guardian is not None else ["handoff"],
                **_joint_consent_details(decision, body.child_agreed),
            },
        )
    return outcome


async def _with_new_handoff_code(
    connection: Connection,
    runtime: Runtime,
    replay: CreateOutcome,
    *,
    api_key_name: str,
    now: datetime,
) -> CreateOutcome:
    """A replayed 201 with the handoff it may still offer: a new code that replaces the first
    (which stops working), so one code works at a time and none is kept in the clear; without
    the handoff when it was used, is locked or past its time, or the request ended."""
    if replay.status_code != 201 or "handoff" not in replay.body:
        return replay
    body = {k: v for k, v in replay.body.items() if k != "handoff"}
    request_id = uuid.UUID(body["id"])
    offer = await handoff.reoffer(connection, runtime, request_id=request_id, now=now)
    if offer is None:
        return CreateOutcome(status_code=replay.status_code, body=body)
    await record_event(
        connection,
        actor=f"app:{api_key_name}",
        action="consent_request.handoff_code_replaced",
        occurred_at=now,
        subject_id=body["subject_id"],
        request_id=request_id,
        reason="the request was sent again with its Idempotency-Key",
    )
    return CreateOutcome(
        status_code=replay.status_code, body={**body, "handoff": msgspec.to_builtins(offer)}
    )


def _joint_consent_details(
    decision: policy.AgeDecision, child_agreed: bool | None
) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if decision.joint_consent:
        details["joint_consent"] = decision.joint_consent_basis
    if child_agreed is not None:
        details["child_agreed"] = child_agreed
    return details


async def _idempotent_replay(
    connection: Connection, api_key_id: uuid.UUID, key: str, fingerprint: bytes
) -> CreateOutcome | None:
    stored = await idempotency_keys.find(connection, api_key_id, key)
    if stored is None:
        return None
    if stored.request_hash != fingerprint:
        raise Conflict("This Idempotency-Key was already used with a different request body.")
    return CreateOutcome(status_code=stored.status_code, body=stored.response)


def _decide_age(body: NewRequest, runtime: Runtime, now: datetime) -> policy.AgeDecision:
    try:
        birth_date = policy.parse_birth_date(body.birth_date)
        return policy.decide_age(birth_date, body.country, now, runtime.settings.min_age)
    except (policy.InvalidBirthDate, policy.UnknownCountry) as exc:
        raise InvalidInput(str(exc)) from None


def _validate_email(raw: str) -> EmailAddress:
    """The rules are in ``service.security.email_address``."""
    try:
        return parse_email_address(raw)
    except InvalidEmailAddress as exc:
        raise InvalidInput(f"guardian_email is not a valid email address: {exc}.") from None


def validate_child_hint(raw: str | None) -> str | None:
    """Shown to the guardian as it is, so only one line of visible text: no control, format
    or bidirectional-override characters (which could make it read as something else)."""
    if raw is None:
        return None
    hint = raw.strip()
    if not hint:
        raise InvalidInput("child_hint: must not be blank; leave it out instead.")
    if len(hint) > CHILD_HINT_MAX_LENGTH:
        raise InvalidInput(f"child_hint: at most {CHILD_HINT_MAX_LENGTH} characters.")
    if not hint.isprintable():
        raise InvalidInput(
            "child_hint: only visible characters and spaces; no control, formatting or "
            "bidirectional-override characters."
        )
    return hint


def encrypt_child_hint(runtime: Runtime, request_id: uuid.UUID, hint: str | None) -> bytes | None:
    return (
        runtime.protector.encrypt(hint.encode(), notifications.child_hint_context(request_id))
        if hint is not None
        else None
    )


def _validate_locale(requested: str | None) -> str:
    """The language of the guardian's emails and pages; one the service does not speak is
    refused rather than silently answered in English."""
    if requested is None:
        return DEFAULT_LOCALE
    locale = shipped_locale(requested)
    if locale is None:
        raise InvalidInput(
            f"locale: {requested[:35]!r} is not a supported language; supported: "
            + ", ".join(LOCALES)
        )
    return locale


def _validate_purposes(requested: list[str], runtime: Runtime) -> list[str]:
    catalogue = runtime.catalogue
    unknown = sorted({p for p in requested if catalogue.get(p) is None})
    if unknown:
        raise InvalidInput(
            f"Unknown purpose(s): {', '.join(unknown)}. Known: {', '.join(catalogue.ids)}."
        )
    missing = [p for p in catalogue.required_ids if p not in requested]
    if missing:
        raise InvalidInput(
            f"The required purpose(s) {', '.join(missing)} must be part of every request."
        )
    return catalogue.ordered(requested)
