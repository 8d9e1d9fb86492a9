"""What can go wrong in the domain, said in its own words.

These errors know nothing of HTTP: ``service.http.problems`` holds the one table that turns
each into a status code, a ``Retry-After`` header, a problem body or a guardian page.
"""

from __future__ import annotations

from enum import StrEnum

from service.db.consent_requests import ConsentRequest
from service.db.consents import Consent
from service.states import ConsentStatus, DataRequestStatus, LinkProblemReason, RequestStatus


class ConsentError(Exception):
    """A domain rule refused the operation; ``detail`` explains it to the caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ConsentError):
    """The record asked about does not exist (or no longer does)."""


class InvalidInput(ConsentError):
    """The input is well-formed but the rules cannot accept it (unknown country, purpose...)."""


class Conflict(ConsentError):
    """The record is not in a state that allows the operation."""

    def __init__(
        self,
        detail: str,
        *,
        current_status: ConsentStatus | DataRequestStatus | RequestStatus | None = None,
    ) -> None:
        super().__init__(detail)
        self.current_status = current_status


class Gone(ConsentError):
    """The record exists but what was asked of it is used up or past its time (a handoff code
    entered already, or expired)."""


class LimitExceeded(ConsentError):
    """Too many attempts; the caller may try again after ``retry_after_seconds``."""

    def __init__(self, detail: str, *, retry_after_seconds: float) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class LinkProblem(Exception):
    """The guardian link cannot be used; ``reason`` picks the page shown, in ``locale`` (None when
    the link leads to no request whose language is known: the browser's language is used)."""

    def __init__(
        self,
        reason: LinkProblemReason,
        *,
        locale: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.locale = locale
        # A locked link stays locked; after its expiry the child's signup can ask again.
        self.retry_after_seconds = retry_after_seconds


class FormError(StrEnum):
    """What is wrong with a guardian's form; each has its sentence on the page."""

    DECISION = "decision"
    PURPOSES = "purposes"
    ATTESTATION = "attestation"
    CONFIRM = "confirm"
    # a purpose ticked that this way of giving consent cannot authorise
    METHOD_TOO_WEAK = "method_too_weak"
    WITHDRAW_NONE = "withdraw_none"
    ERASE_PARTIAL = "erase_partial"
    # The notice changed between showing the page and its submission: read it again.
    NOTICE_CHANGED = "notice_changed"
    # a new guardian address that is not one the service sends to, or the current one
    EMAIL_INVALID = "email_invalid"
    EMAIL_UNCHANGED = "email_unchanged"
    ADDRESS_CHANGES_EXHAUSTED = "address_changes_exhausted"
    # the rights page: an erasure not confirmed, a complaint empty or too long
    ERASE_CONFIRM = "erase_confirm"
    COMPLAINT = "complaint"


class InvalidSubmission(Exception):
    """The guardian's form was incomplete or inconsistent; ``errors`` say how."""

    def __init__(self, request: ConsentRequest, errors: list[FormError]) -> None:
        super().__init__("; ".join(errors))
        self.request = request
        self.errors = errors


class InvalidWithdrawal(Exception):
    """The guardian's withdrawal form cannot be acted on as sent; ``errors`` say why and
    ``consent`` is the consent as it stands, to show the form again."""

    def __init__(self, consent: Consent, errors: list[FormError]) -> None:
        super().__init__("; ".join(errors))
        self.consent = consent
        self.errors = errors


class InvalidAddressChange(Exception):
    """The guardian's new address cannot be taken as sent; ``errors`` say why and ``consent``
    is the consent whose address it would change, to show the form again."""

    def __init__(self, consent: Consent, errors: list[FormError]) -> None:
        super().__init__("; ".join(errors))
        self.consent = consent
        self.errors = errors


class AlreadyEnded(Exception):
    """The consent ended in a concurrent transaction just before this one could end it."""
