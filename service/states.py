"""Every state (and kind) a record can be in, named once for code, templates and the schema.

The values are the strings stored in PostgreSQL (each ``status`` column has a CHECK constraint
listing exactly these; ``tests/db/test_states.py`` compares them) and sent on the wire. A new
state is a new member here plus a migration that widens the constraint.
"""

from __future__ import annotations

from enum import StrEnum


class RequestStatus(StrEnum):
    """A consent request: waiting for the guardian, then answered or closed unanswered."""

    PENDING = "pending"
    GRANTED = "granted"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ConsentStatus(StrEnum):
    """A consent: live while granted, then ended one way or another (never revived)."""

    GRANTED = "granted"
    REVOKED = "revoked"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    # a corrected birth date shows the child may consent alone: no guardian's consent needed
    NOT_REQUIRED = "not_required"


class OutboxStatus(StrEnum):
    """A queued email or webhook."""

    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"
    CANCELLED = "cancelled"


class OutboxKind(StrEnum):
    """What an outbox message is delivered as."""

    EMAIL = "email"
    WEBHOOK = "webhook"


class CreatedStatus(StrEnum):
    """The answer to opening a consent request: a request now waits, or none was needed."""

    PENDING = "pending"
    NOT_REQUIRED = "not_required"


class CheckStatus(StrEnum):
    """What the check endpoint reports for a subject: its latest consent or request, or none;
    or that its processing is restricted (GDPR Art. 18), whatever its consent says."""

    GRANTED = "granted"
    PENDING = "pending"
    DENIED = "denied"
    EXPIRED = "expired"
    REVOKED = "revoked"
    WITHDRAWN = "withdrawn"
    # the child needs no guardian's consent (a corrected birth date): the app asks the child
    NOT_REQUIRED = "not_required"
    NONE = "none"
    RESTRICTED = "restricted"


class LinkProblemReason(StrEnum):
    """Why a guardian link cannot be used; each has its own page."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    LOCKED = "locked"
    # a withdrawal link after too many refused submissions: for a while only
    WITHDRAWAL_LOCKED = "withdrawal_locked"
    NOT_LIVE = "not_live"
    SUPERSEDED = "superseded"
    # the main app cancelled the request (the child's signup was abandoned or deleted)
    CANCELLED = "cancelled"
    NOT_REQUIRED = "not_required"
    # a guardian's address-change link (confirmed by the new address) past its time, or used
    ADDRESS_LINK_EXPIRED = "address_link_expired"
    ADDRESS_LINK_USED = "address_link_used"


class DataRequestKind(StrEnum):
    """A rights request a guardian makes (GDPR Art. 15-21), or a complaint about an access
    decision (decided as a new request)."""

    ACCESS = "access"
    PORTABILITY = "portability"
    RECTIFICATION = "rectification"
    ERASURE = "erasure"
    RESTRICTION = "restriction"
    OBJECTION = "objection"
    COMPLAINT = "complaint"


class DataRequestChannel(StrEnum):
    """How a rights request reached the operator."""

    GUARDIAN_PAGE = "guardian_page"
    STAFF_LETTER = "staff_letter"
    STAFF_EMAIL = "staff_email"
    STAFF_PHONE = "staff_phone"


class DataRequestStatus(StrEnum):
    """A rights request: open until answered; done and refused are final."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    REFUSED = "refused"


class VerificationMethod(StrEnum):
    """How a guardian's consent to a purpose was verified (``consents.method`` and each value
    of ``consents.purpose_methods``)."""

    EMAIL_PLUS = "email_plus"


class HandoffProblem(StrEnum):
    """Why a handoff code or the page after it cannot be used; each has its sentence."""

    # no live handoff has this code (mistyped, or never issued)
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    # too many wrong one-time codes or refused forms
    LOCKED = "locked"
    # the request was decided, cancelled, replaced or has expired
    ENDED = "ended"
    # the page after the code was closed for good (address confirmed, or its time is up)
    SESSION_ENDED = "session_ended"
