"""The check answer: may this subject use this purpose right now? Fails closed."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from service.consent import lifecycle
from service.db.consents import CheckRow
from service.states import CheckStatus, ConsentStatus, RequestStatus

# What the main app is told for each stored state; total, so a new state cannot reach the hot
# path unmapped (tests/consent/test_check_states.py). The app knows no "superseded": for it
# that consent simply ended.
CHECK_STATUS_OF_CONSENT: dict[ConsentStatus, CheckStatus] = {
    ConsentStatus.GRANTED: CheckStatus.GRANTED,
    ConsentStatus.REVOKED: CheckStatus.REVOKED,
    ConsentStatus.WITHDRAWN: CheckStatus.WITHDRAWN,
    ConsentStatus.EXPIRED: CheckStatus.EXPIRED,
    ConsentStatus.SUPERSEDED: CheckStatus.EXPIRED,
    ConsentStatus.NOT_REQUIRED: CheckStatus.NOT_REQUIRED,
}
# The check query reads only pending, denied and expired requests; a granted request always has
# its consent, and a cancelled one counts as none.
CHECK_STATUS_OF_REQUEST: dict[RequestStatus, CheckStatus] = {
    RequestStatus.PENDING: CheckStatus.PENDING,
    RequestStatus.DENIED: CheckStatus.DENIED,
    RequestStatus.EXPIRED: CheckStatus.EXPIRED,
    RequestStatus.GRANTED: CheckStatus.GRANTED,
    RequestStatus.CANCELLED: CheckStatus.NONE,
}


class CheckAnswer(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    purpose: str
    allowed: bool
    status: CheckStatus
    consent_id: uuid.UUID | None
    expires_at: datetime | None
    token: str | None


def answer_check(row: CheckRow, *, subject_id: str, purpose: str, now: datetime) -> CheckAnswer:
    def answer(
        status: CheckStatus,
        *,
        allowed: bool = False,
        consent: bool = False,
        expires_at: datetime | None = None,
        token: str | None = None,
    ) -> CheckAnswer:
        return CheckAnswer(
            subject_id=subject_id,
            purpose=purpose,
            allowed=allowed,
            status=status,
            consent_id=row.consent_id if consent else None,
            expires_at=expires_at,
            token=token,
        )

    if row.restricted:
        # GDPR Art. 18: the data stays, but nothing may be done with it, whatever the consent
        # (even one a guardian gives while the restriction lasts).
        return answer(CheckStatus.RESTRICTED)
    if row.consent_status == ConsentStatus.GRANTED:
        assert row.consent_expires_at is not None
        assert row.consent_purposes is not None
        status = lifecycle.consent_status_at(row.consent_status, row.consent_expires_at, now)
        if status != ConsentStatus.GRANTED:
            # Lapsed but not yet swept by the worker: never report it as live.
            return answer(
                CHECK_STATUS_OF_CONSENT[status], consent=True, expires_at=row.consent_expires_at
            )
        return answer(
            CheckStatus.GRANTED,
            allowed=purpose in row.consent_purposes,
            consent=True,
            expires_at=row.consent_expires_at,
            token=row.token,
        )

    consent_newer = row.consent_status is not None and (
        row.request_status is None
        or (row.consent_changed_at or now) >= (row.request_changed_at or now)
    )
    if consent_newer and row.consent_status is not None:
        return answer(
            CHECK_STATUS_OF_CONSENT[row.consent_status],
            consent=True,
            expires_at=row.consent_expires_at,
        )
    if row.request_status is not None:
        assert row.request_expires_at is not None
        request_status = lifecycle.request_status_at(
            row.request_status, row.request_expires_at, now
        )
        expires = row.request_expires_at if request_status == RequestStatus.PENDING else None
        return answer(CHECK_STATUS_OF_REQUEST[request_status], expires_at=expires)
    return answer(CheckStatus.NONE)
