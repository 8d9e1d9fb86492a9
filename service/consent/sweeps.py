"""The worker's sweeps: write down what time alone has changed.

Readers never wait for these (``lifecycle`` says what a record is at any moment); the sweeps
make the stored status catch up and send what each change tells the guardian and the app.
"""

from __future__ import annotations

from datetime import timedelta

from service.consent import endings, lifecycle, notifications
from service.consent.retention import policy_of
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import consents as consents_repo
from service.db import handoffs as handoffs_repo
from service.db.audit_events import SYSTEM_ACTOR, record_event
from service.db.connection import Connection
from service.states import ConsentStatus

# A consent with less than this left when its notice falls due gets none: the lapse (and the
# app's consent.expired) follows within the day, and the confirmation email named the date.
SHORTEST_LAPSING_NOTICE = timedelta(days=1)


async def expire_overdue_requests(connection: Connection, runtime: Runtime) -> int:
    now = runtime.clock.now()
    async with connection.transaction():
        expired = await requests_repo.expire_overdue(connection, now)
        for request in expired:
            await endings.request_closed_unanswered(
                connection,
                runtime,
                request,
                now,
                reason="no answer before the link expired; guardian address deleted",
            )
    return len(expired)


async def end_finished_handoffs(connection: Connection, runtime: Runtime) -> int:
    """A handoff's session, one-time code and unconfirmed address, once the session's time is
    over (the request itself may stay pending for weeks)."""
    now = runtime.clock.now()
    return await handoffs_repo.clear_finished_sessions(
        connection, now - policy_of(runtime).handoff_session
    )


async def expire_lapsed_consents(connection: Connection, runtime: Runtime) -> int:
    now = runtime.clock.now()
    async with connection.transaction():
        lapsed = await consents_repo.expire_lapsed(connection, now)
        for consent in lapsed:
            await endings.consent_lapsed(connection, runtime, consent, now)
    return len(lapsed)


async def notify_lapsing_consents(connection: Connection, runtime: Runtime) -> int:
    """Tell the guardian (email) and the app (``consent.lapsing``) ahead of a consent lapsing
    because the child comes of age; once per consent, however many workers sweep."""
    lead = policy_of(runtime).lapsing_notice
    if not lead:
        return 0
    now = runtime.clock.now()
    notified = 0
    async with connection.transaction():
        due = await consents_repo.claim_lapsing_notices(
            connection, now=now, lapsing_before=now + lead
        )
        for consent in due:
            request = await requests_repo.get_request(connection, consent.request_id)
            if (
                request is None
                # a lapse by the maximum validity: the child still needs a guardian after it
                or consent.expires_at != lifecycle.coming_of_age_at(request)
                or consent.expires_at - now < SHORTEST_LAPSING_NOTICE
            ):
                continue
            await notifications.tell_consent_lapsing(connection, runtime, consent, request, now)
            await record_event(
                connection,
                actor=SYSTEM_ACTOR,
                action="consent.lapsing_notified",
                occurred_at=now,
                subject_id=consent.subject_id,
                request_id=consent.request_id,
                consent_id=consent.id,
                from_status=ConsentStatus.GRANTED,
                to_status=ConsentStatus.GRANTED,
                reason="the child reaches the age of consent soon",
                details={"lapses_at": consent.expires_at.isoformat()},
            )
            notified += 1
    return notified
