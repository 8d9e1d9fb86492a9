"""Which verification method authorises which purpose.

Email plus is the one method the service offers. It authorises every purpose, except where the
law wants more for a disclosure to third parties (COPPA: a US child's data; ``policy``'s
``disclosure_methods``). Such a purpose is shown but cannot be granted until a stronger method
exists; each granted purpose records the method that authorised it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from service.consent import policy
from service.consent.purposes import Purpose
from service.states import VerificationMethod

AVAILABLE_METHOD = VerificationMethod.EMAIL_PLUS


def needs_stronger_method(
    purposes: Sequence[Purpose],
    country: str,
    now: datetime,
    method: VerificationMethod = AVAILABLE_METHOD,
) -> list[str]:
    """The ids of ``purposes`` that ``method`` may not authorise for a child of ``country``."""
    return [
        p.id
        for p in purposes
        if p.discloses and not policy.may_authorise_disclosure(country, now, method)
    ]


def purpose_methods(
    granted: Sequence[str], method: VerificationMethod = AVAILABLE_METHOD
) -> dict[str, VerificationMethod]:
    """The method that authorised each granted purpose (one method per decision today)."""
    return dict.fromkeys(granted, method)
