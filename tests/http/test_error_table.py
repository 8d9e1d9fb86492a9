"""The one table from domain errors to HTTP: statuses, Retry-After rounding, every link page."""

from __future__ import annotations

import pytest

from service.consent.errors import (
    Conflict,
    ConsentError,
    InvalidInput,
    LimitExceeded,
    LinkProblem,
    NotFound,
)
from service.http.problems import retry_after, retry_after_headers, status_for
from service.states import LinkProblemReason


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("gone"), 404),
        (InvalidInput("bad"), 422),
        (Conflict("busy"), 409),
        (LimitExceeded("slow down", retry_after_seconds=3), 429),
    ],
)
def test_each_domain_error_has_its_status(error: ConsentError, status: int) -> None:
    assert status_for(error) == status


@pytest.mark.parametrize("reason", list(LinkProblemReason))
def test_every_link_problem_has_a_status(reason: LinkProblemReason) -> None:
    expected = {
        LinkProblemReason.UNKNOWN: 404,
        LinkProblemReason.LOCKED: 429,
        LinkProblemReason.WITHDRAWAL_LOCKED: 429,
    }.get(reason, 410)
    assert status_for(LinkProblem(reason)) == expected


@pytest.mark.parametrize(
    ("seconds", "header"),
    [
        (0.0, "1"),
        (-4.0, "1"),
        (0.2, "1"),
        (1.0, "1"),
        (59.0001, "60"),
        (60.0, "60"),
        (68400, "68400"),
    ],
)
def test_retry_after_rounds_up_to_whole_seconds_and_never_says_zero(
    seconds: float, header: str
) -> None:
    assert retry_after(seconds) == header


def test_retry_after_header_only_where_waiting_helps() -> None:
    assert retry_after_headers(LimitExceeded("x", retry_after_seconds=2.5)) == {"Retry-After": "3"}
    locked = LinkProblem(LinkProblemReason.LOCKED, retry_after_seconds=10)
    assert retry_after_headers(locked) == {"Retry-After": "10"}
    assert retry_after_headers(LinkProblem(LinkProblemReason.USED)) is None
    assert retry_after_headers(Conflict("x")) is None
