"""Every stored state maps to an answer the check endpoint may give."""

from __future__ import annotations

from service.consent.check import CHECK_STATUS_OF_CONSENT, CHECK_STATUS_OF_REQUEST
from service.states import CheckStatus, ConsentStatus, RequestStatus


def test_every_consent_state_has_a_check_answer() -> None:
    assert set(CHECK_STATUS_OF_CONSENT) == set(ConsentStatus)


def test_every_request_state_has_a_check_answer() -> None:
    assert set(CHECK_STATUS_OF_REQUEST) == set(RequestStatus)


def test_only_a_granted_consent_answers_granted() -> None:
    granting = {state for state, answer in CHECK_STATUS_OF_CONSENT.items() if answer == "granted"}
    assert granting == {ConsentStatus.GRANTED}
    assert CHECK_STATUS_OF_CONSENT[ConsentStatus.SUPERSEDED] is CheckStatus.EXPIRED
