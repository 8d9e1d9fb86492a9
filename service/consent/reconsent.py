"""Re-consent: when the notice changes, the guardians of live consents are asked again.

``consent-service reconsent`` opens, for each live consent whose ``policy_version`` is not the
current notice of its language, a consent request to the same guardian for the same purposes
(those granted, plus any the catalogue now requires). The old consent stays live until the
guardian decides or the grace period (``CONSENT_RECONSENT_GRACE_DAYS``) ends:

- a grant supersedes it, as every grant does;
- a refusal withdraws it at once (``endings.end_refused_reconsent``);
- no answer: the request's link and the consent both end at the deadline (the consent is
  ``expired`` with ``consents.RECONSENT_LAPSE_REASON``; the app gets ``consent.expired``).

A subject with any pending request is not asked (again): that request, once granted, is on the
current notice. Each consent is handled in a transaction of its own under its subject's lock,
so the command can be run again, or twice at once, without asking anybody twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import msgspec

from service.consent import lifecycle, notifications
from service.consent import notice as notices
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import consents as consents_repo
from service.db import locks
from service.db.audit_events import record_event
from service.db.connection import Connection
from service.i18n import LOCALES
from service.security.email_address import (
    EmailAddress,
    InvalidEmailAddress,
    parse_email_address,
)
from service.security.tokens import hash_link_token, new_link_token
from service.states import ConsentStatus, RequestStatus

CLI_ACTOR = "cli"


class ReconsentSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What a run found: consents on an older notice, and what became of them."""

    outdated: int
    opened: int
    already_pending: int
    no_address: int


async def open_reconsents(
    connection: Connection, runtime: Runtime, *, dry_run: bool = False
) -> ReconsentSummary:
    now = runtime.clock.now()
    current = {locale: runtime.notice(locale).version for locale in LOCALES}
    candidates = await consents_repo.live_on_other_notices(connection, current, now)
    opened = pending = no_address = 0
    for candidate in candidates:
        if dry_run:
            if await requests_repo.pending_for_subject(connection, candidate.subject_id):
                pending += 1
            else:
                opened += 1
            continue
        outcome = await _ask_again(connection, runtime, candidate.id, candidate.subject_id, now)
        if outcome == "opened":
            opened += 1
        elif outcome == "pending":
            pending += 1
        elif outcome == "no_address":
            no_address += 1
    return ReconsentSummary(
        outdated=len(candidates), opened=opened, already_pending=pending, no_address=no_address
    )


async def _ask_again(
    connection: Connection,
    runtime: Runtime,
    consent_id: uuid.UUID,
    subject_id: str,
    now: datetime,
) -> str:
    """One consent: "opened", "pending" (asked already), "no_address", or "current" (it
    ended or was renewed meanwhile)."""
    async with connection.transaction():
        # The subject's lock first: its requests and consents cannot change under us.
        await locks.lock_subject(connection, subject_id)
        consent = await consents_repo.get_consent(connection, consent_id)
        if consent is None or lifecycle.consent_status_at(
            consent.status, consent.expires_at, now
        ) != (ConsentStatus.GRANTED):
            return "current"
        old = await requests_repo.get_request(connection, consent.request_id)
        if old is None:
            return "current"
        notice = runtime.notice(old.locale)
        if consent.policy_version == notice.version:
            return "current"
        if await requests_repo.pending_for_subject(connection, subject_id):
            return "pending"
        email = notifications.guardian_email(runtime, old)
        if email is None:
            return "no_address"
        try:
            guardian = parse_email_address(email)
        except InvalidEmailAddress:
            return "no_address"
        await _open(connection, runtime, consent, old, guardian, notice, now)
        return "opened"


async def _open(
    connection: Connection,
    runtime: Runtime,
    consent: consents_repo.Consent,
    old: requests_repo.ConsentRequest,
    guardian: EmailAddress,
    notice: notices.Notice,
    now: datetime,
) -> None:
    catalogue = runtime.catalogue
    purposes = catalogue.ordered(
        {p for p in consent.purposes if catalogue.get(p) is not None} | set(catalogue.required_ids)
    )
    due = now + timedelta(days=runtime.settings.reconsent_grace_days)
    request_id = uuid.uuid4()
    link_token = new_link_token()
    # the account the guardian was told the first request was about
    child_hint = notifications.child_hint(runtime, old)
    # Requests before consents, as in every transaction.
    await requests_repo.insert_request(
        connection,
        request_id=request_id,
        subject_id=consent.subject_id,
        country=old.country,
        age_of_consent=old.age_of_consent,
        basis=old.basis,
        birth_date=None,
        consent_required_until=old.consent_required_until,
        guardian_email_enc=runtime.protector.encrypt(guardian.address.encode(), request_id.bytes),
        guardian_email_hash=runtime.protector.address_hashes(guardian)[0],
        guardian_ref=old.guardian_ref,
        purposes=purposes,
        locale=old.locale,
        policy_version=notice.version,
        link_token_hash=hash_link_token(link_token),
        api_key_id=None,
        now=now,
        expires_at=due,
        # The child's agreement the app attested for the consent being renewed (joint consent).
        joint_consent=old.joint_consent,
        child_agreed=old.child_agreed,
        reconsent_of=consent.id,
        child_hint_enc=(
            runtime.protector.encrypt(
                child_hint.encode(), notifications.child_hint_context(request_id)
            )
            if child_hint is not None
            else None
        ),
    )
    renewed = await consents_repo.set_reconsent_due(connection, consent.id, due, now)
    assert renewed is not None  # live, under the subject's lock
    await notices.record_use(connection, notice, now)
    await notifications.ask_guardian(
        connection,
        runtime,
        notice=notice,
        request_id=request_id,
        subject_id=consent.subject_id,
        email=guardian.address,
        locale=old.locale,
        link_token=link_token,
        purposes=purposes,
        country=old.country,
        expires_at=due,
        now=now,
        reconsent_until=renewed.expires_at,
        child_hint=child_hint,
    )
    await record_event(
        connection,
        actor=CLI_ACTOR,
        action="request.created",
        occurred_at=now,
        subject_id=consent.subject_id,
        request_id=request_id,
        to_status=RequestStatus.PENDING,
        reason="re-consent: the notice changed",
        details={
            "purposes": purposes,
            "jurisdiction": old.country,
            "policy_version": notice.version,
            "locale": old.locale,
            "reconsent_of": str(consent.id),
        },
    )
    await record_event(
        connection,
        actor=CLI_ACTOR,
        action="consent.reconsent_requested",
        occurred_at=now,
        subject_id=consent.subject_id,
        request_id=request_id,
        consent_id=consent.id,
        from_status=ConsentStatus.GRANTED,
        to_status=ConsentStatus.GRANTED,
        reason="the notice changed; the consent ends unless the guardian consents again",
        details={
            "from_policy_version": consent.policy_version,
            "to_policy_version": notice.version,
            "ends_at": renewed.expires_at.isoformat(),
            "previous_expires_at": consent.expires_at.isoformat(),
        },
    )
