"""What each transition tells the guardian (emails) and the main app (webhooks).

Everything here is queued in the outbox inside the transition's transaction, so a message is
sent exactly when its change commits. Emails go to the guardian's decrypted address; webhooks
carry ids, statuses and purposes, never anything about the guardian.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from service.consent import policy, verification
from service.consent.notice import Notice
from service.consent.revocation_reasons import GuardianReason
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import outbox as outbox_table
from service.db.connection import Connection
from service.db.consent_requests import ConsentRequest
from service.db.consents import Consent
from service.delivery import emails, outbox
from service.states import ConsentStatus, RequestStatus


def guardian_email(runtime: Runtime, request: ConsentRequest) -> str | None:
    """The guardian's address, or None once it has been deleted (expiry, purge)."""
    if request.guardian_email_enc is None:
        return None
    return runtime.protector.decrypt(request.guardian_email_enc, request.id.bytes).decode()


def child_hint_context(request_id: uuid.UUID) -> bytes:
    """What a child hint's ciphertext is bound to: its request, and being a child hint (so it
    can never be passed off as the request's guardian address or the other way round)."""
    return request_id.bytes + b"child_hint"


def child_hint(runtime: Runtime, request: ConsentRequest) -> str | None:
    """What the child said about themselves (``child_hint``), or None (none given, or deleted
    with the guardian's address)."""
    if request.child_hint_enc is None:
        return None
    return runtime.protector.decrypt(
        request.child_hint_enc, child_hint_context(request.id)
    ).decode()


async def _consent_guardian(
    connection: Connection, runtime: Runtime, consent: Consent
) -> tuple[ConsentRequest, str] | None:
    """The request a consent came from and its guardian's address, if both are still there."""
    request = await requests_repo.get_request(connection, consent.request_id)
    email = guardian_email(runtime, request) if request else None
    if email is None or request is None:
        return None
    return request, email


async def ask_guardian(
    connection: Connection,
    runtime: Runtime,
    *,
    notice: Notice,
    request_id: uuid.UUID,
    subject_id: str,
    email: str,
    locale: str,
    link_token: str,
    purposes: Sequence[str],
    country: str,
    expires_at: datetime,
    now: datetime,
    reconsent_until: datetime | None = None,
    child_hint: str | None = None,
) -> None:
    """The direct notice with the review link, for a request just opened."""
    asked = runtime.catalogue.among(purposes)
    rendered = emails.render_request_email(
        locale=locale,
        notice=notice,
        review_url=runtime.link(f"/guardian/{link_token}"),
        expires_at=expires_at,
        purpose_ids=purposes,
        needs_stronger_method=verification.needs_stronger_method(asked, country, now),
        reconsent_until=reconsent_until,
        child_hint=child_hint,
        timezone=policy.display_timezone(country),
    )
    await outbox.enqueue_email(
        connection,
        runtime.protector,
        topic="guardian_request",
        subject_id=subject_id,
        related_id=request_id,
        to=email,
        locale=locale,
        email=rendered,
        now=now,
    )


async def confirm_grant(
    connection: Connection,
    runtime: Runtime,
    request: ConsentRequest,
    *,
    consent_id: uuid.UUID,
    granted: Sequence[str],
    refused: Sequence[str],
    withdraw_token: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Email plus: a confirmation after a delay gives a guardian whose address was misused
    the chance to notice and withdraw."""
    email = guardian_email(runtime, request)
    if email is None:
        return
    confirmation = emails.render_confirmation_email(
        locale=request.locale,
        operator_name=runtime.settings.operator_name,
        privacy_notice_url=runtime.settings.privacy_notice_url,
        granted=runtime.catalogue.among(granted),
        refused=runtime.catalogue.among(refused),
        withdraw_url=runtime.link(f"/guardian/withdraw/{withdraw_token}"),
        granted_at=now,
        valid_until=expires_at,
        timezone=policy.display_timezone(request.country),
        child_hint=child_hint(runtime, request),
    )
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


async def tell_replaced_guardian(
    connection: Connection,
    runtime: Runtime,
    old: Consent,
    new_request: ConsentRequest,
    now: datetime,
) -> None:
    """A consent replaced by another guardian's: its guardian must not find out by chance."""
    await outbox_table.cancel_emails_for(connection, old.id)
    if old.guardian_ref == new_request.guardian_ref:
        return
    found = await _consent_guardian(connection, runtime, old)
    if found is None:
        return
    old_request, email = found
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
            purposes=runtime.catalogue.among(old.purposes),
            replaced_at=now,
            timezone=policy.display_timezone(old.jurisdiction),
        ),
        now=now,
    )


def revoked_email(
    runtime: Runtime,
    consent: Consent,
    request: ConsentRequest,
    guardian_reason: GuardianReason | None,
    now: datetime,
) -> emails.RenderedEmail:
    """The email telling a guardian that staff revoked their consent (also what the console
    shows staff before they confirm)."""
    return emails.render_revoked_email(
        locale=request.locale,
        operator_name=runtime.settings.operator_name,
        purposes=runtime.catalogue.among(consent.purposes),
        reason=guardian_reason.text if guardian_reason else None,
        reason_message=guardian_reason.message if guardian_reason else None,
        revoked_at=now,
        timezone=policy.display_timezone(consent.jurisdiction),
        child_hint=child_hint(runtime, request),
    )


async def tell_consent_ended(
    connection: Connection,
    runtime: Runtime,
    consent: Consent,
    *,
    status: ConsentStatus,
    now: datetime,
    erased: bool = False,
    guardian_reason: GuardianReason | None = None,
) -> None:
    """Tell the guardian their consent was withdrawn (by them) or revoked (by staff; with
    ``guardian_reason``, the words meant for them, never staff's internal reason).

    ``erased``: the withdrawal erases the guardian's data; the email says so, and it is the
    last use of the address (the outbox keeps it, encrypted, only until the email is sent or
    given up on)."""
    found = await _consent_guardian(connection, runtime, consent)
    if found is None:
        return
    request, email = found
    purposes = runtime.catalogue.among(consent.purposes)
    if status == ConsentStatus.WITHDRAWN:
        message = emails.render_withdrawn_email(
            locale=request.locale,
            operator_name=runtime.settings.operator_name,
            purposes=purposes,
            withdrawn_at=now,
            erased=erased,
            timezone=policy.display_timezone(consent.jurisdiction),
            child_hint=child_hint(runtime, request),
        )
    else:
        message = revoked_email(runtime, consent, request, guardian_reason, now)
    # A pending email-plus confirmation would now tell the guardian something untrue.
    await outbox_table.cancel_emails_for(connection, consent.id)
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
        scrub_when_done=erased,
    )


async def tell_consent_lapsing(
    connection: Connection,
    runtime: Runtime,
    consent: Consent,
    request: ConsentRequest,
    now: datetime,
) -> None:
    """Ahead of the coming of age: the guardian by email, the app by ``consent.lapsing`` (from
    then on the young person decides alone, so the app must ask them)."""
    email = guardian_email(runtime, request)
    if email is not None:
        await outbox.enqueue_email(
            connection,
            runtime.protector,
            topic="consent_lapsing",
            subject_id=consent.subject_id,
            related_id=consent.id,
            to=email,
            locale=request.locale,
            email=emails.render_lapsing_email(
                locale=request.locale,
                operator_name=runtime.settings.operator_name,
                purposes=runtime.catalogue.among(consent.purposes),
                comes_of_age_on=request.consent_required_until,
                age_of_consent=request.age_of_consent,
                lapses_at=consent.expires_at,
                retention_policy_url=runtime.link("/privacy/retention"),
                timezone=policy.display_timezone(consent.jurisdiction),
            ),
            now=now,
        )
    await consent_webhook(
        connection,
        runtime,
        consent,
        ConsentStatus.GRANTED,
        now,
        event_type="consent.lapsing",
        lapses_at=consent.expires_at.isoformat(),
    )


async def tell_purposes_withdrawn(
    connection: Connection,
    runtime: Runtime,
    consent: Consent,
    *,
    withdrawn: Sequence[str],
    withdraw_url: str,
    now: datetime,
) -> None:
    """Confirm a withdrawal of some purposes: what was withdrawn, what remains, and the same
    link for withdrawing the rest."""
    found = await _consent_guardian(connection, runtime, consent)
    if found is None:
        return
    request, email = found
    await outbox.enqueue_email(
        connection,
        runtime.protector,
        topic="consent_purposes_withdrawn",
        subject_id=consent.subject_id,
        related_id=consent.id,
        to=email,
        locale=request.locale,
        email=emails.render_purposes_withdrawn_email(
            locale=request.locale,
            operator_name=runtime.settings.operator_name,
            withdrawn=runtime.catalogue.among(withdrawn),
            remaining=runtime.catalogue.among(consent.purposes),
            withdraw_url=withdraw_url,
            withdrawn_at=now,
            timezone=policy.display_timezone(consent.jurisdiction),
            child_hint=child_hint(runtime, request),
            # a dashboard withdrawal mails the dashboard's address, never a link of its own
            signed_in=withdraw_url == runtime.link("/guardian"),
        ),
        now=now,
    )


async def purposes_withdrawn_webhook(
    connection: Connection,
    runtime: Runtime,
    consent: Consent,
    withdrawn: Sequence[str],
    now: datetime,
) -> None:
    """``consent.updated``: the consent stays granted for ``purposes``; ``withdrawn_purposes``
    are no longer allowed."""
    await consent_webhook(
        connection,
        runtime,
        consent,
        ConsentStatus.GRANTED,
        now,
        event_type="consent.updated",
        withdrawn_purposes=list(withdrawn),
        expires_at=consent.expires_at.isoformat(),
    )


async def consent_webhook(
    connection: Connection,
    runtime: Runtime,
    consent: Consent,
    status: ConsentStatus,
    now: datetime,
    *,
    event_type: str | None = None,
    **extra: str | list[str],
) -> None:
    """``consent.<status>`` (or ``event_type``) for a consent that is now in ``status``."""
    await webhook(
        connection,
        runtime,
        status,
        subject_id=consent.subject_id,
        request_id=consent.request_id,
        consent_id=consent.id,
        purposes=consent.purposes,
        now=now,
        event_type=event_type,
        **extra,
    )


async def webhook(
    connection: Connection,
    runtime: Runtime,
    status: RequestStatus | ConsentStatus,
    *,
    subject_id: str,
    request_id: uuid.UUID,
    consent_id: uuid.UUID | None = None,
    purposes: Sequence[str] = (),
    now: datetime,
    event_type: str | None = None,
    **extra: str | list[str],
) -> None:
    """Queue ``consent.<status>`` (unless ``event_type`` names another event) for the main app:
    ids, status, purposes; never the guardian."""
    if runtime.settings.webhook_url is None:
        return
    await outbox.enqueue_webhook(
        connection,
        event_type=event_type or f"consent.{status}",
        subject_id=subject_id,
        related_id=consent_id or request_id,
        data={
            "subject_id": subject_id,
            "request_id": str(request_id),
            "consent_id": str(consent_id) if consent_id else None,
            "status": str(status),
            "purposes": list(purposes),
            **extra,
        },
        now=now,
    )


async def subject_erased_webhook(
    connection: Connection, runtime: Runtime, subject_id: str, now: datetime
) -> None:
    """``subject.erased``: the main app should erase its copy too."""
    if runtime.settings.webhook_url is None:
        return
    await outbox.enqueue_webhook(
        connection,
        event_type="subject.erased",
        subject_id=subject_id,
        related_id=uuid.uuid4(),
        data={"subject_id": subject_id, "status": "erased"},
        now=now,
        scrub_when_done=True,
    )


async def subject_erasure_requested_webhook(
    connection: Connection, runtime: Runtime, consent: Consent, now: datetime
) -> None:
    """``subject.erasure_requested``: the guardian withdrew and this service erased what it
    held, so the main app must delete the child's data too."""
    if runtime.settings.webhook_url is None:
        return
    await outbox.enqueue_webhook(
        connection,
        event_type="subject.erasure_requested",
        subject_id=consent.subject_id,
        related_id=consent.id,
        data={
            "subject_id": consent.subject_id,
            "reason": "withdrawal",
            "request_id": str(consent.request_id),
            "consent_id": str(consent.id),
        },
        now=now,
        scrub_when_done=True,
    )
