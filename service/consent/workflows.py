"""The consent state machine: request, grant, deny, withdraw, revoke, expire.

Every transition is one transaction: a conditional update (only from the expected state),
its audit event, and its outbox messages commit together or not at all.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from service.consent import policy
from service.consent.purposes import Purpose
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import consents as consents_repo
from service.db.audit_events import GUARDIAN_ACTOR, SYSTEM_ACTOR, record_event
from service.db.connection import Connection
from service.db.consent_requests import ConsentRequest
from service.db.consents import Consent
from service.db.signing_keys import register_signing_key
from service.delivery import emails, outbox
from service.i18n import negotiate_locale
from service.security.personal_data import email_identity, normalize_email
from service.security.tokens import hash_link_token, new_link_token

GUARDIAN_REQUESTS_PER_DAY = 5
IDEMPOTENCY_RETENTION = timedelta(days=1)
RATE_WINDOW_RETENTION = timedelta(hours=1)
MAX_FAILED_SUBMISSIONS = 5
METHOD_EMAIL_PLUS = "email_plus"


class ConsentError(Exception):
    """A domain rule refused the operation; ``status`` is the HTTP status that explains it."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        retry_after: int | None = None,
        current_status: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after
        self.current_status = current_status


class NewRequest(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    birth_date: str
    country: str
    guardian_email: str
    purposes: list[str]
    locale: str | None = None


class RequestCreated(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    subject_id: str
    status: str
    expires_at: datetime


class NotRequired(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    status: str
    age: int
    age_of_consent: int
    jurisdiction: str
    basis: str


class CreateOutcome(msgspec.Struct, frozen=True, kw_only=True):
    status_code: int
    body: dict[str, Any]


def _lock_key(namespace: str, value: str) -> int:
    digest = hashlib.sha256(f"{namespace}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def advisory_lock(connection: Connection, namespace: str, value: str) -> None:
    await connection.execute("select pg_advisory_xact_lock($1)", _lock_key(namespace, value))


def _retry_after(seconds: float) -> int:
    return max(1, int(seconds + 0.999))


def consent_lapses_at(request: ConsentRequest, granted_at: datetime, max_validity: int) -> datetime:
    """Midnight of the day the child reaches the age of consent in its country, or earlier."""
    zone = ZoneInfo(policy.timezone_for(request.country))
    coming_of_age = datetime.combine(request.consent_required_until, time(0), tzinfo=zone)
    return min(coming_of_age.astimezone(UTC), granted_at + timedelta(seconds=max_validity))


def request_hash(runtime: Runtime, body: NewRequest) -> bytes:
    # Keyed: a plain hash of a body with an email and a birth date could be brute-forced.
    return runtime.protector.lookup_hash(msgspec.json.encode(body).decode())


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
    email = _validate_email(body.guardian_email)
    purposes = _validate_purposes(body.purposes, runtime)
    locale = negotiate_locale(body.locale)
    if not decision.consent_required:
        # Nothing is stored about a child who may consent alone.
        return CreateOutcome(
            status_code=200,
            body=msgspec.to_builtins(
                NotRequired(
                    subject_id=body.subject_id,
                    status="not_required",
                    age=decision.age,
                    age_of_consent=decision.age_of_consent,
                    jurisdiction=decision.jurisdiction,
                    basis=decision.basis,
                )
            ),
        )
    assert decision.consent_required_until is not None

    fingerprint = request_hash(runtime, body)
    async with connection.transaction():
        if idempotency_key is not None:
            await advisory_lock(connection, "idempotency", f"{api_key_id}:{idempotency_key}")
            replay = await _idempotent_replay(connection, api_key_id, idempotency_key, fingerprint)
            if replay is not None:
                return replay
        await advisory_lock(connection, "subject", body.subject_id)
        email_hash = runtime.protector.lookup_hash(email_identity(email))
        await advisory_lock(connection, "guardian", email_hash.hex())
        recent = await requests_repo.recent_requests_for_guardian(
            connection, email_hash, now - timedelta(days=1)
        )
        if len(recent) >= GUARDIAN_REQUESTS_PER_DAY:
            wait = recent[0] + timedelta(days=1) - now
            raise ConsentError(
                429,
                f"At most {GUARDIAN_REQUESTS_PER_DAY} consent requests per guardian email "
                "address in 24 hours.",
                retry_after=_retry_after(wait.total_seconds()),
            )
        cancelled = await requests_repo.cancel_pending_for_subject(connection, body.subject_id, now)
        for old_request in cancelled:
            await outbox.cancel_emails_for(connection, old_request)

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
            guardian_email_enc=runtime.protector.encrypt(email.encode(), request_id.bytes),
            guardian_email_hash=email_hash,
            guardian_ref=runtime.protector.guardian_reference(email_identity(email)),
            purposes=purposes,
            locale=locale,
            policy_version=runtime.catalogue.notice_version,
            link_token_hash=hash_link_token(link_token),
            api_key_id=api_key_id,
            now=now,
            expires_at=expires_at,
        )
        rendered = emails.render_request_email(
            locale=locale,
            operator_name=runtime.settings.operator_name,
            privacy_notice_url=runtime.settings.privacy_notice_url,
            review_url=runtime.link(f"/guardian/{link_token}"),
            expires_at=expires_at,
            purposes=_purposes(runtime, purposes),
        )
        await outbox.enqueue_email(
            connection,
            runtime.protector,
            topic="guardian_request",
            subject_id=body.subject_id,
            related_id=request_id,
            to=email,
            locale=locale,
            email=rendered,
            now=now,
        )
        created = RequestCreated(
            id=request_id, subject_id=body.subject_id, status="pending", expires_at=expires_at
        )
        outcome = CreateOutcome(status_code=201, body=msgspec.to_builtins(created))
        if idempotency_key is not None:
            await connection.execute(
                """
                insert into idempotency_keys
                    (api_key_id, key, request_hash, status_code, response, subject_id, created_at)
                values ($1, $2, $3, $4, $5::jsonb, $6, $7)
                """,
                api_key_id,
                idempotency_key,
                fingerprint,
                outcome.status_code,
                msgspec.json.encode(outcome.body).decode(),
                body.subject_id,
                now,
            )
        for old_request in cancelled:
            await record_event(
                connection,
                actor=f"app:{api_key_name}",
                action="request.superseded",
                occurred_at=now,
                subject_id=body.subject_id,
                request_id=old_request,
                from_status="pending",
                to_status="cancelled",
                reason="a newer consent request for the same subject",
            )
        await record_event(
            connection,
            actor=f"app:{api_key_name}",
            action="request.created",
            occurred_at=now,
            subject_id=body.subject_id,
            request_id=request_id,
            to_status="pending",
            details={
                "purposes": purposes,
                "jurisdiction": decision.jurisdiction,
                "age_of_consent": decision.age_of_consent,
                "basis": decision.basis,
                "policy_version": runtime.catalogue.notice_version,
                "locale": locale,
            },
        )
    return outcome


async def _idempotent_replay(
    connection: Connection, api_key_id: uuid.UUID, key: str, fingerprint: bytes
) -> CreateOutcome | None:
    row = await connection.fetchrow(
        "select request_hash, status_code, response from idempotency_keys "
        "where api_key_id = $1 and key = $2",
        api_key_id,
        key,
    )
    if row is None:
        return None
    if row["request_hash"] != fingerprint:
        raise ConsentError(
            409, "This Idempotency-Key was already used with a different request body."
        )
    return CreateOutcome(status_code=row["status_code"], body=msgspec.json.decode(row["response"]))


def _decide_age(body: NewRequest, runtime: Runtime, now: datetime) -> policy.AgeDecision:
    try:
        birth_date = policy.parse_birth_date(body.birth_date)
        return policy.decide_age(birth_date, body.country, now, runtime.settings.min_age)
    except (policy.InvalidBirthDate, policy.UnknownCountry) as exc:
        raise ConsentError(422, str(exc)) from None


def _validate_email(raw: str) -> str:
    email = raw.strip()
    local, at, domain = email.rpartition("@")
    valid = (
        at
        and 0 < len(local) <= 64
        and len(email) <= 254
        and "." in domain
        and not domain.startswith(".")
        and not domain.endswith(".")
        and ".." not in domain
        and all(c.isalnum() or c in "-." for c in domain)
        and not any(c.isspace() or c in '@<>()[],;:"\\' for c in local)
        and all(c.isprintable() for c in email)
    )
    if not valid:
        raise ConsentError(422, "guardian_email is not a valid email address.")
    return normalize_email(email)


def _validate_purposes(requested: list[str], runtime: Runtime) -> list[str]:
    catalogue = runtime.catalogue
    unknown = sorted({p for p in requested if catalogue.get(p) is None})
    if unknown:
        raise ConsentError(
            422,
            f"Unknown purpose(s): {', '.join(unknown)}. Known: {', '.join(catalogue.ids)}.",
        )
    missing = [p for p in catalogue.required_ids if p not in requested]
    if missing:
        raise ConsentError(
            422, f"The required purpose(s) {', '.join(missing)} must be part of every request."
        )
    return catalogue.ordered(requested)


def _purposes(runtime: Runtime, ids: Sequence[str]) -> list[Purpose]:
    return [p for p in runtime.catalogue.purposes if p.id in ids]


# ---- guardian decisions -------------------------------------------------------------------


class LinkProblem(Exception):
    """The guardian link cannot be used; ``reason`` picks the page shown."""

    def __init__(
        self,
        reason: str,
        status: int,
        *,
        retry_after: int | None = None,
        locale: str = "en",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        # A locked link stays locked; after its expiry the child's signup can ask again.
        self.retry_after = retry_after
        self.locale = locale


class InvalidSubmission(Exception):
    def __init__(self, request: ConsentRequest, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.request = request
        self.errors = errors


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    outcome: str
    request: ConsentRequest
    granted: list[str]
    refused: list[str]
    withdraw_token: str | None = None


def usable_request(request: ConsentRequest | None, now: datetime) -> ConsentRequest:
    if request is None:
        raise LinkProblem("unknown", 404)
    locale = request.locale
    if request.status == "pending" and request.expires_at <= now:
        raise LinkProblem("expired", 410, locale=locale)
    if request.status == "expired":
        raise LinkProblem("expired", 410, locale=locale)
    if request.status == "cancelled":
        raise LinkProblem("superseded", 410, locale=locale)
    if request.status != "pending":
        raise LinkProblem("used", 410, locale=locale)
    if request.failed_submissions >= MAX_FAILED_SUBMISSIONS:
        wait = _retry_after((request.expires_at - now).total_seconds())
        raise LinkProblem("locked", 429, retry_after=wait, locale=locale)
    return request


def came_of_age(request: ConsentRequest, now: datetime) -> bool:
    """The child may now consent alone, so the guardian has nothing left to decide."""
    today = policy.local_today(policy.timezone_for(request.country), now)
    return request.consent_required_until <= today


async def load_for_review(connection: Connection, runtime: Runtime, token: str) -> ConsentRequest:
    now = runtime.clock.now()
    request = usable_request(
        await requests_repo.find_by_link_token(connection, hash_link_token(token)), now
    )
    if came_of_age(request, now):
        # Only said here; a GET changes nothing. The next POST closes the request.
        raise LinkProblem("not_required", 410, locale=request.locale)
    return request


async def record_failed_submission(connection: Connection, request_id: uuid.UUID) -> int | None:
    """Count an invalid form; None when the request is no longer pending (decided, erased)."""
    return await requests_repo.count_failed_submission(connection, request_id)


async def decide(
    connection: Connection,
    runtime: Runtime,
    *,
    token: str,
    decision: str,
    chosen: list[str],
    attested: bool,
) -> Decision:
    """Record the guardian's grant or denial; exactly one decision per request, ever."""
    now = runtime.clock.now()
    token_hash = hash_link_token(token)
    async with connection.transaction():
        found = await requests_repo.find_by_link_token(connection, token_hash)
        if found is not None:
            await advisory_lock(connection, "subject", found.subject_id)
        request = usable_request(
            await requests_repo.find_by_link_token(connection, token_hash, for_update=True),
            now,
        )
        if not came_of_age(request, now):
            errors = _submission_errors(request, decision, chosen, attested)
            if errors:
                raise InvalidSubmission(request, errors)
            granted = [p for p in request.purposes if p in chosen] if decision == "grant" else []
            required = [p for p in request.purposes if p in runtime.catalogue.required_ids]
            if decision == "grant" and all(p in granted for p in required):
                return await _grant(connection, runtime, request, granted, now)
            return await _deny(connection, runtime, request, granted, now)
        await _close_no_longer_needed(connection, runtime, request, now)
    # Raised after the commit: raising inside the transaction would roll the closing back.
    raise LinkProblem("not_required", 410, locale=request.locale)


async def _close_no_longer_needed(
    connection: Connection, runtime: Runtime, request: ConsentRequest, now: datetime
) -> None:
    """The child reached the age of consent while the request waited: nothing to decide."""
    if not await requests_repo.set_decision(connection, request.id, "expired", now):
        raise LinkProblem("used", 410)
    await requests_repo.forget_guardian(connection, request.id)
    await _request_expired(
        connection,
        runtime,
        request,
        now,
        reason="the child reached the age of consent before the guardian decided",
    )


async def _request_expired(
    connection: Connection,
    runtime: Runtime,
    request: ConsentRequest,
    now: datetime,
    *,
    reason: str,
) -> None:
    """What follows a request closing unanswered: no more emails, a webhook, the event."""
    await outbox.cancel_emails_for(connection, request.id)
    await _webhook(
        connection,
        runtime,
        "expired",
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
        from_status="pending",
        to_status="expired",
        reason=reason,
    )


def _submission_errors(
    request: ConsentRequest, decision: str, chosen: list[str], attested: bool
) -> list[str]:
    errors = []
    if decision not in {"grant", "deny"}:
        errors.append("decision")
    if any(p not in request.purposes for p in chosen):
        errors.append("purposes")
    if decision == "grant" and not attested:
        errors.append("attestation")
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
    if not await requests_repo.set_decision(connection, request.id, "granted", now):
        raise LinkProblem("used", 410)
    # The previous live consent ends here: replaced, or (lapsed but not yet swept) expired.
    previous = await consents_repo.supersede_live(connection, request.subject_id, now)
    consent_id = uuid.uuid4()
    expires_at = consent_lapses_at(request, now, runtime.settings.consent_max_validity)
    token = runtime.signer.sign(
        consent_id=str(consent_id),
        subject_id=request.subject_id,
        issued_at=now,
        expires_at=expires_at,
        purposes=granted,
        jurisdiction=request.country,
        method=METHOD_EMAIL_PLUS,
        policy_version=request.policy_version,
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
        policy_version=request.policy_version,
        guardian_ref=request.guardian_ref,
        granted_at=now,
        expires_at=expires_at,
        token=token,
        withdraw_token_hash=hash_link_token(withdraw_token),
    )
    refused = [p for p in request.purposes if p not in granted]
    email = _guardian_email(runtime, request)
    if email is not None:
        confirmation = emails.render_confirmation_email(
            locale=request.locale,
            operator_name=runtime.settings.operator_name,
            privacy_notice_url=runtime.settings.privacy_notice_url,
            granted=_purposes(runtime, granted),
            refused=_purposes(runtime, refused),
            withdraw_url=runtime.link(f"/guardian/withdraw/{withdraw_token}"),
            granted_at=now,
            valid_until=expires_at,
        )
        # Email plus: a confirmation after a delay gives a guardian whose address was misused
        # the chance to notice and withdraw.
        await outbox.enqueue_email(
            connection,
            runtime.protector,
            topic="consent_confirmation",
            subject_id=request.subject_id,
            related_id=consent_id,
            to=email,
            locale=request.locale,
            email=confirmation,
            now=now,
            deliver_at=now + timedelta(seconds=runtime.settings.confirmation_delay),
        )
    await _webhook(
        connection,
        runtime,
        "granted",
        subject_id=request.subject_id,
        request_id=request.id,
        consent_id=consent_id,
        purposes=granted,
        now=now,
        expires_at=expires_at.isoformat(),
    )
    for old_consent in previous:
        if old_consent.status == "superseded":
            await _tell_replaced_guardian(connection, runtime, old_consent, request, now)
        else:
            await outbox.cancel_emails_for(connection, old_consent.id)
            await _consent_webhook(connection, runtime, old_consent, "expired", now)
    for old_consent in previous:
        await record_event(
            connection,
            actor=GUARDIAN_ACTOR if old_consent.status == "superseded" else SYSTEM_ACTOR,
            action=f"consent.{old_consent.status}",
            occurred_at=now,
            subject_id=request.subject_id,
            request_id=old_consent.request_id,
            consent_id=old_consent.id,
            from_status="granted",
            to_status=old_consent.status,
            reason=old_consent.end_reason,
        )
    await record_event(
        connection,
        actor=GUARDIAN_ACTOR,
        action="consent.granted",
        occurred_at=now,
        subject_id=request.subject_id,
        request_id=request.id,
        consent_id=consent_id,
        from_status="pending",
        to_status="granted",
        details={
            "purposes": granted,
            "refused": refused,
            "method": METHOD_EMAIL_PLUS,
            "attestation": "parental responsibility affirmed",
            "policy_version": request.policy_version,
            "guardian": request.guardian_ref,
            "expires_at": expires_at.isoformat(),
        },
    )
    return Decision(
        outcome="granted",
        request=request,
        granted=granted,
        refused=refused,
        withdraw_token=withdraw_token,
    )


async def _tell_replaced_guardian(
    connection: Connection,
    runtime: Runtime,
    old: Consent,
    new_request: ConsentRequest,
    now: datetime,
) -> None:
    """A consent replaced by another guardian's: its guardian must not find out by chance."""
    await outbox.cancel_emails_for(connection, old.id)
    if old.guardian_ref == new_request.guardian_ref:
        return
    old_request = await requests_repo.get_request(connection, old.request_id)
    email = _guardian_email(runtime, old_request) if old_request else None
    if email is None or old_request is None:
        return
    await outbox.enqueue_email(
        connection,
        runtime.protector,
        topic="consent_replaced",
        subject_id=old.subject_id,
        related_id=old.id,
        to=email,
        locale=old_request.locale,
        email=emails.render_replaced_email(
            locale=old_request.locale,
            operator_name=runtime.settings.operator_name,
            purposes=_purposes(runtime, old.purposes),
            replaced_at=now,
        ),
        now=now,
    )


async def _deny(
    connection: Connection,
    runtime: Runtime,
    request: ConsentRequest,
    granted: list[str],
    now: datetime,
) -> Decision:
    if not await requests_repo.set_decision(connection, request.id, "denied", now):
        raise LinkProblem("used", 410)
    await _webhook(
        connection, runtime, "denied", subject_id=request.subject_id, request_id=request.id, now=now
    )
    await record_event(
        connection,
        actor=GUARDIAN_ACTOR,
        action="request.denied",
        occurred_at=now,
        subject_id=request.subject_id,
        request_id=request.id,
        from_status="pending",
        to_status="denied",
        details={"refused": request.purposes, "policy_version": request.policy_version},
    )
    return Decision(outcome="denied", request=request, granted=[], refused=request.purposes)


def _guardian_email(runtime: Runtime, request: ConsentRequest) -> str | None:
    if request.guardian_email_enc is None:
        return None
    return runtime.protector.decrypt(request.guardian_email_enc, request.id.bytes).decode()


async def _consent_webhook(
    connection: Connection, runtime: Runtime, consent: Consent, status: str, now: datetime
) -> None:
    await _webhook(
        connection,
        runtime,
        status,
        subject_id=consent.subject_id,
        request_id=consent.request_id,
        consent_id=consent.id,
        purposes=consent.purposes,
        now=now,
    )


async def _webhook(
    connection: Connection,
    runtime: Runtime,
    status: str,
    *,
    subject_id: str,
    request_id: uuid.UUID,
    consent_id: uuid.UUID | None = None,
    purposes: Sequence[str] = (),
    now: datetime,
    **extra: str,
) -> None:
    """Queue ``consent.<status>`` for the main app: ids, status, purposes; never the guardian."""
    if runtime.settings.webhook_url is None:
        return
    await outbox.enqueue_webhook(
        connection,
        event_type=f"consent.{status}",
        subject_id=subject_id,
        related_id=consent_id or request_id,
        data={
            "subject_id": subject_id,
            "request_id": str(request_id),
            "consent_id": str(consent_id) if consent_id else None,
            "status": status,
            "purposes": list(purposes),
            **extra,
        },
        now=now,
    )


# ---- ending a consent ---------------------------------------------------------------------


async def load_for_withdrawal(connection: Connection, runtime: Runtime, token: str) -> Consent:
    consent = await consents_repo.find_by_withdraw_token(connection, hash_link_token(token))
    return _live(consent, runtime.clock.now())


def _live(consent: Consent | None, now: datetime) -> Consent:
    if consent is None:
        raise LinkProblem("unknown", 404)
    if consent.status != "granted" or consent.expires_at <= now:
        raise LinkProblem("not_live", 410)
    return consent


async def withdraw(connection: Connection, runtime: Runtime, token: str) -> Consent:
    now = runtime.clock.now()
    token_hash = hash_link_token(token)
    async with connection.transaction():
        unlocked = await consents_repo.find_by_withdraw_token(connection, token_hash)
        if unlocked is not None:
            await advisory_lock(connection, "subject", unlocked.subject_id)
        found = _live(
            await consents_repo.find_by_withdraw_token(connection, token_hash, for_update=True),
            now,
        )
        return await _end(
            connection,
            runtime,
            found,
            status="withdrawn",
            reason="withdrawn by the guardian",
            actor=GUARDIAN_ACTOR,
            now=now,
        )


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
            raise ConsentError(404, "No consent with this id.")
        await advisory_lock(connection, "subject", unlocked.subject_id)
        consent = await consents_repo.get_consent(connection, consent_id, for_update=True)
        if consent is None:
            raise ConsentError(404, "No consent with this id.")
        if consent.status == "granted" and consent.expires_at <= now:
            raise ConsentError(
                409,
                "This consent has lapsed and can no longer be revoked.",
                current_status="expired",
            )
        if consent.status != "granted":
            raise ConsentError(
                409,
                f"Only a granted consent can be revoked; this one is {consent.status}.",
                current_status=consent.status,
            )
        return await _end(
            connection,
            runtime,
            consent,
            status="revoked",
            reason=reason,
            actor=f"staff:{staff}",
            now=now,
        )


async def _end(
    connection: Connection,
    runtime: Runtime,
    consent: Consent,
    *,
    status: str,
    reason: str,
    actor: str,
    now: datetime,
) -> Consent:
    ended = await consents_repo.end_consent(
        connection, consent.id, status=status, reason=reason, now=now
    )
    if ended is None:
        raise LinkProblem("not_live", 410)
    request = await requests_repo.get_request(connection, consent.request_id)
    email = _guardian_email(runtime, request) if request else None
    if email is not None and request is not None:
        purposes = _purposes(runtime, consent.purposes)
        if status == "withdrawn":
            message = emails.render_withdrawn_email(
                locale=request.locale,
                operator_name=runtime.settings.operator_name,
                purposes=purposes,
                withdrawn_at=now,
            )
        else:
            message = emails.render_revoked_email(
                locale=request.locale,
                operator_name=runtime.settings.operator_name,
                purposes=purposes,
                reason=reason,
                revoked_at=now,
            )
        # A pending email-plus confirmation would now tell the guardian something untrue.
        await outbox.cancel_emails_for(connection, consent.id)
        await outbox.enqueue_email(
            connection,
            runtime.protector,
            topic=f"consent_{status}",
            subject_id=consent.subject_id,
            related_id=consent.id,
            to=email,
            locale=request.locale,
            email=message,
            now=now,
        )
    await _consent_webhook(connection, runtime, consent, status, now)
    await record_event(
        connection,
        actor=actor,
        action=f"consent.{status}",
        occurred_at=now,
        subject_id=consent.subject_id,
        request_id=consent.request_id,
        consent_id=consent.id,
        from_status="granted",
        to_status=status,
        reason=reason,
    )
    return ended


# ---- lapse sweeps (worker) ----------------------------------------------------------------


async def expire_overdue_requests(connection: Connection, runtime: Runtime) -> int:
    now = runtime.clock.now()
    async with connection.transaction():
        expired = await requests_repo.expire_overdue(connection, now)
        for request in expired:
            await _request_expired(
                connection,
                runtime,
                request,
                now,
                reason="no answer before the link expired; guardian address deleted",
            )
    return len(expired)


async def expire_lapsed_consents(connection: Connection, runtime: Runtime) -> int:
    now = runtime.clock.now()
    async with connection.transaction():
        lapsed = await consents_repo.expire_lapsed(connection, now)
        for consent in lapsed:
            # a confirmation still queued would describe a consent that has ended
            await outbox.cancel_emails_for(connection, consent.id)
            await _consent_webhook(connection, runtime, consent, "expired", now)
            await record_event(
                connection,
                actor=SYSTEM_ACTOR,
                action="consent.expired",
                occurred_at=now,
                subject_id=consent.subject_id,
                request_id=consent.request_id,
                consent_id=consent.id,
                from_status="granted",
                to_status="expired",
                reason=consent.end_reason,
            )
    return len(lapsed)
