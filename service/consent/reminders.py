"""Reminding an undecided guardian: once by the sweep, ahead of the link's expiry
(``CONSENT_REMINDER_BEFORE_EXPIRY``), and on demand by support staff; one path for both.

A reminder carries a link of its own (only its hash is stored, like the first link's); both open
the same request until it is decided. The abuse limits hold for both: a guardian address gets
at most ``GUARDIAN_REMINDERS_PER_DAY`` reminders in 24 hours, and one request at most one
reminder per ``REMINDER_INTERVAL``.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import msgspec

from service.consent import lifecycle, notifications, policy
from service.consent.errors import Conflict, LimitExceeded, NotFound
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import locks
from service.db.audit_events import SYSTEM_ACTOR, record_event
from service.db.connection import Connection
from service.db.consent_requests import ConsentRequest
from service.delivery import emails, outbox
from service.security.email_address import parse_email_address
from service.security.tokens import hash_link_token, new_link_token
from service.states import RequestStatus

GUARDIAN_REMINDERS_PER_DAY = 3
REMINDER_INTERVAL = timedelta(hours=1)


class ReminderSent(msgspec.Struct, frozen=True, kw_only=True):
    request_id: uuid.UUID
    reminded_at: datetime
    expires_at: datetime


async def send_due_reminders(connection: Connection, runtime: Runtime) -> int:
    """The sweep: remind each undecided guardian whose link expires within the configured lead,
    once per request, however many workers sweep."""
    lead = timedelta(seconds=runtime.settings.reminder_before_expiry)
    if not lead:
        return 0
    now = runtime.clock.now()
    sent = 0
    for request_id in await requests_repo.due_for_reminder(connection, now=now, lead=lead):
        async with connection.transaction():
            try:
                reminded = await _remind(
                    connection, runtime, request_id, now=now, actor=SYSTEM_ACTOR, scheduled=True
                )
            except (LimitExceeded, Conflict, NotFound):
                reminded = None
            if reminded is None:
                # Over the address's limit, or decided meanwhile: this request is not reminded
                # later either, so the sweep does not come back to it.
                await requests_repo.mark_reminder_skipped(connection, request_id, now)
            else:
                sent += 1
    return sent


async def remind(
    connection: Connection, runtime: Runtime, request_id: uuid.UUID, *, actor: str
) -> ReminderSent:
    """Send the guardian of a pending request a reminder now (support staff's resend)."""
    async with connection.transaction():
        reminded = await _remind(
            connection, runtime, request_id, now=runtime.clock.now(), actor=actor, scheduled=False
        )
    if reminded is None:
        raise Conflict("This request's guardian has been reminded already.")
    return reminded


async def next_reminder_at(
    connection: Connection, runtime: Runtime, request: ConsentRequest, now: datetime
) -> datetime | None:
    """When support may resend this pending request's email, under the limits ``_remind``
    enforces; None when it may be resent now."""
    moments = []
    if request.reminded_at is not None and request.reminded_at + REMINDER_INTERVAL > now:
        moments.append(request.reminded_at + REMINDER_INTERVAL)
    email = notifications.guardian_email(runtime, request)
    if email:
        hashes = runtime.protector.address_hashes(parse_email_address(email))
        recent = sorted(
            await requests_repo.recent_reminders_for_guardian(
                connection, hashes, now - timedelta(days=1)
            )
        )
        if len(recent) >= GUARDIAN_REMINDERS_PER_DAY:
            moments.append(recent[len(recent) - GUARDIAN_REMINDERS_PER_DAY] + timedelta(days=1))
    return max(moments) if moments else None


async def _remind(
    connection: Connection,
    runtime: Runtime,
    request_id: uuid.UUID,
    *,
    now: datetime,
    actor: str,
    scheduled: bool,
) -> ReminderSent | None:
    """Queue a reminder; None when ``scheduled`` and the request was reminded meanwhile."""
    found = await requests_repo.get_request(connection, request_id)
    if found is None:
        raise NotFound("No consent request with this id.")
    email = notifications.guardian_email(runtime, found)
    # Locks in the order every transaction takes them: subject, guardian, then the row.
    await locks.lock_subject(connection, found.subject_id)
    hashes = runtime.protector.address_hashes(parse_email_address(email)) if email else []
    if hashes:
        await locks.lock_guardian(connection, hashes[0])
    request = await requests_repo.lock_request(connection, request_id)
    if request is None:
        raise NotFound("No consent request with this id.")
    status = lifecycle.request_status_at(request.status, request.expires_at, now)
    if status != RequestStatus.PENDING:
        raise Conflict(
            f"This request is {status}: only the guardian of a pending request is reminded."
        )
    if email is None or request.guardian_email_enc is None:
        raise Conflict("This request's guardian address has been deleted.")
    if request.reminded_at is not None:
        if scheduled:
            return None
        wait = request.reminded_at + REMINDER_INTERVAL - now
        if wait > timedelta(0):
            raise LimitExceeded(
                "This request's guardian was reminded less than an hour ago.",
                retry_after_seconds=wait.total_seconds(),
            )
    recent = await requests_repo.recent_reminders_for_guardian(
        connection, hashes, now - timedelta(days=1)
    )
    if len(recent) >= GUARDIAN_REMINDERS_PER_DAY:
        raise LimitExceeded(
            f"At most {GUARDIAN_REMINDERS_PER_DAY} reminders per guardian email address in 24 "
            "hours.",
            retry_after_seconds=(recent[0] + timedelta(days=1) - now).total_seconds(),
        )
    link_token = new_link_token()
    await requests_repo.set_reminded(
        connection, request.id, link_token_hash=hash_link_token(link_token), now=now
    )
    await outbox.enqueue_email(
        connection,
        runtime.protector,
        topic="guardian_reminder",
        subject_id=request.subject_id,
        related_id=request.id,
        to=email,
        locale=request.locale,
        email=emails.render_reminder_email(
            locale=request.locale,
            operator_name=runtime.settings.operator_name,
            review_url=runtime.link(f"/guardian/{link_token}"),
            expires_at=request.expires_at,
            child_hint=notifications.child_hint(runtime, request),
            timezone=policy.display_timezone(request.country),
        ),
        now=now,
    )
    await record_event(
        connection,
        actor=actor,
        action="request.reminded",
        occurred_at=now,
        subject_id=request.subject_id,
        request_id=request.id,
        from_status=RequestStatus.PENDING,
        to_status=RequestStatus.PENDING,
        reason="scheduled reminder before the link expires" if scheduled else "resent on demand",
    )
    return ReminderSent(request_id=request.id, reminded_at=now, expires_at=request.expires_at)
