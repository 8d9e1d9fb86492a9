"""The check answer: may this subject use this purpose right now? Fails closed."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from service.db.consents import CheckRow


class CheckAnswer(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    purpose: str
    allowed: bool
    status: str
    consent_id: uuid.UUID | None
    expires_at: datetime | None
    token: str | None


def answer_check(row: CheckRow, *, subject_id: str, purpose: str, now: datetime) -> CheckAnswer:
    def answer(
        status: str,
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

    if row.consent_status == "granted":
        assert row.consent_expires_at is not None
        assert row.consent_purposes is not None
        if row.consent_expires_at <= now:
            # Lapsed but not yet swept by the worker: never report it as live.
            return answer("expired", consent=True, expires_at=row.consent_expires_at)
        return answer(
            "granted",
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
        status = "expired" if row.consent_status == "superseded" else row.consent_status
        return answer(status, consent=True, expires_at=row.consent_expires_at)
    if row.request_status is not None:
        status = row.request_status
        if (
            status == "pending"
            and row.request_expires_at is not None
            and row.request_expires_at <= now
        ):
            status = "expired"
        expires = row.request_expires_at if status == "pending" else None
        return answer(status, expires_at=expires)
    return answer("none")
