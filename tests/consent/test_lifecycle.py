"""One rule decides a record's status at a moment: at ``expires_at`` it has lapsed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.consent.lifecycle import consent_status_at, request_status_at
from service.states import ConsentStatus, RequestStatus

EXPIRES = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def test_a_pending_request_expires_at_its_expiry_not_a_moment_earlier() -> None:
    assert request_status_at(RequestStatus.PENDING, EXPIRES, EXPIRES - TICK) == "pending"
    assert request_status_at(RequestStatus.PENDING, EXPIRES, EXPIRES) == RequestStatus.EXPIRED
    assert request_status_at(RequestStatus.PENDING, EXPIRES, EXPIRES + TICK) == "expired"


def test_a_granted_consent_lapses_at_its_expiry_not_a_moment_earlier() -> None:
    assert consent_status_at(ConsentStatus.GRANTED, EXPIRES, EXPIRES - TICK) == "granted"
    assert consent_status_at(ConsentStatus.GRANTED, EXPIRES, EXPIRES) == ConsentStatus.EXPIRED


@pytest.mark.parametrize("status", [s for s in RequestStatus if s != RequestStatus.PENDING])
def test_a_request_already_closed_keeps_its_status(status: RequestStatus) -> None:
    assert request_status_at(status, EXPIRES, EXPIRES + timedelta(days=400)) == status


@pytest.mark.parametrize("status", [s for s in ConsentStatus if s != ConsentStatus.GRANTED])
def test_an_ended_consent_keeps_its_status(status: ConsentStatus) -> None:
    assert consent_status_at(status, EXPIRES, EXPIRES + timedelta(days=400)) == status
