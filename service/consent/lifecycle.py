"""When records change state by time alone, and what state they are in at a given moment.

A pending request passes its ``expires_at`` and a granted consent lapses at its ``expires_at``
without anyone acting; the worker's sweeps write that down a little later. Until they have,
every reader asks here, so nothing ever reports a lapsed consent as live. The SQL that must
filter by the same rule (sweeps, superseding, the check's live-consent probe) lives in
``service.db`` and names the function it mirrors.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from service.consent import policy
from service.db.consent_requests import ConsentRequest
from service.states import ConsentStatus, RequestStatus


def request_status_at(status: RequestStatus, expires_at: datetime, now: datetime) -> RequestStatus:
    """A pending request whose link has expired is expired, swept or not."""
    if status == RequestStatus.PENDING and expires_at <= now:
        return RequestStatus.EXPIRED
    return status


def consent_status_at(status: ConsentStatus, expires_at: datetime, now: datetime) -> ConsentStatus:
    """A granted consent past its ``expires_at`` has lapsed (expired), swept or not."""
    if status == ConsentStatus.GRANTED and expires_at <= now:
        return ConsentStatus.EXPIRED
    return status


def consent_lapses_at(request: ConsentRequest, granted_at: datetime, max_validity: int) -> datetime:
    """Midnight of the day the child reaches the age of consent in its country, or earlier."""
    return min(coming_of_age_at(request), granted_at + timedelta(seconds=max_validity))


def coming_of_age_at(request: ConsentRequest) -> datetime:
    """Midnight, in the child's country, of the day the child may consent alone."""
    zone = ZoneInfo(policy.timezone_for(request.country))
    coming_of_age = datetime.combine(request.consent_required_until, time(0), tzinfo=zone)
    return coming_of_age.astimezone(UTC)


def came_of_age(request: ConsentRequest, now: datetime) -> bool:
    """The child may now consent alone, so the guardian has nothing left to decide."""
    today = policy.local_today(policy.timezone_for(request.country), now)
    return request.consent_required_until <= today
