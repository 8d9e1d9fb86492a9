"""SQL for consent requests; rows become Structs, nothing else happens here."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

import asyncpg
import msgspec

from service.db.connection import Connection
from service.states import RequestStatus

_COLUMNS = """
    id, subject_id, status, country, age_of_consent, basis, consent_required_until,
    guardian_email_enc, guardian_ref, purposes, locale, policy_version, failed_submissions,
    created_at, expires_at, decided_at, joint_consent, child_agreed, reconsent_of,
    cancelled_by_app, child_hint_enc, reminded_at
"""


class ConsentRequest(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    subject_id: str
    status: RequestStatus
    country: str
    age_of_consent: int
    basis: str
    consent_required_until: date
    guardian_email_enc: bytes | None
    guardian_ref: str
    purposes: list[str]
    locale: str
    policy_version: str
    failed_submissions: int
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    # the child consents too (joint consent); the app's attestation that the child agreed
    joint_consent: bool
    child_agreed: bool | None
    # The live consent this request asks to renew under the current notice (`reconsent`).
    reconsent_of: uuid.UUID | None = None
    # cancelled by the main app rather than replaced by a newer request
    cancelled_by_app: bool = False
    # What the child said about themselves (``child_hint``), encrypted like the address.
    child_hint_enc: bytes | None = None
    # When the one reminder to the undecided guardian was queued.
    reminded_at: datetime | None = None


def request_from_row(row: asyncpg.Record) -> ConsentRequest:
    """A request from a row (or a ``consent_requests`` composite) that has its columns."""
    return msgspec.convert(dict(row), ConsentRequest)


def _convert(row: asyncpg.Record | None) -> ConsentRequest | None:
    return msgspec.convert(dict(row), ConsentRequest) if row else None


async def get_request(connection: Connection, request_id: uuid.UUID) -> ConsentRequest | None:
    row = await connection.fetchrow(
        f"select {_COLUMNS} from consent_requests where id = $1", request_id
    )
    return _convert(row)


async def locale_of(connection: Connection, request_id: uuid.UUID) -> str | None:
    locale: str | None = await connection.fetchval(
        "select locale from consent_requests where id = $1", request_id
    )
    return locale


async def find_by_link_token(
    connection: Connection, token_hash: bytes, *, for_update: bool = False
) -> ConsentRequest | None:
    lock = " for update" if for_update else ""
    row = await connection.fetchrow(
        f"""
        select {_COLUMNS} from consent_requests
        where link_token_hash = $1 or reminder_link_token_hash = $1
            or handoff_link_token_hash = $1{lock}
        """,
        token_hash,
    )
    return _convert(row)


async def insert_request(
    connection: Connection,
    *,
    request_id: uuid.UUID,
    subject_id: str,
    country: str,
    age_of_consent: int,
    basis: str,
    birth_date: date | None,
    consent_required_until: date,
    guardian_email_enc: bytes | None,
    guardian_email_hash: bytes | None,
    guardian_ref: str,
    purposes: list[str],
    locale: str,
    policy_version: str,
    link_token_hash: bytes,
    api_key_id: uuid.UUID | None,
    now: datetime,
    expires_at: datetime,
    joint_consent: bool,
    child_agreed: bool | None,
    reconsent_of: uuid.UUID | None = None,
    child_hint_enc: bytes | None = None,
) -> None:
    await connection.execute(
        """
        insert into consent_requests (
            id, subject_id, status, country, age_of_consent, basis, birth_date,
            consent_required_until, guardian_email_enc, guardian_email_hash, guardian_ref,
            purposes, locale, policy_version, link_token_hash, api_key_id, created_at,
            expires_at, updated_at, joint_consent, child_agreed, reconsent_of, child_hint_enc
        ) values ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                  $16, $17, $16, $18, $19, $20, $21)
        """,
        request_id,
        subject_id,
        country,
        age_of_consent,
        basis,
        birth_date,
        consent_required_until,
        guardian_email_enc,
        guardian_email_hash,
        guardian_ref,
        purposes,
        locale,
        policy_version,
        link_token_hash,
        api_key_id,
        now,
        expires_at,
        joint_consent,
        child_agreed,
        reconsent_of,
        child_hint_enc,
    )


async def pending_for_subject(connection: Connection, subject_id: str) -> uuid.UUID | None:
    request_id: uuid.UUID | None = await connection.fetchval(
        "select id from consent_requests where subject_id = $1 and status = 'pending'",
        subject_id,
    )
    return request_id


async def cancel_pending_for_subject(
    connection: Connection, subject_id: str, now: datetime
) -> list[uuid.UUID]:
    rows = await connection.fetch(
        """
        update consent_requests
        set status = 'cancelled', decided_at = $2, updated_at = $2, birth_date = null
        where subject_id = $1 and status = 'pending'
        returning id
        """,
        subject_id,
        now,
    )
    return [row["id"] for row in rows]


async def cancel_by_app(
    connection: Connection, request_id: uuid.UUID, now: datetime
) -> ConsentRequest | None:
    """Conditional: only a request still pending (not past its expiry) is cancelled, and its
    guardian's address deleted with it; None when it is not (any more) pending. The link
    token stays, so the guardian's link can say what happened."""
    row = await connection.fetchrow(
        f"""
        update consent_requests
        set status = 'cancelled', cancelled_by_app = true, decided_at = $2, updated_at = $2,
            birth_date = null, guardian_email_enc = null, guardian_email_hash = null,
            child_hint_enc = null
        where id = $1 and status = 'pending' and expires_at > $2
        returning {_COLUMNS}
        """,
        request_id,
        now,
    )
    return _convert(row)


async def set_decision(
    connection: Connection, request_id: uuid.UUID, status: RequestStatus, now: datetime
) -> bool:
    """Conditional: only a pending request can be decided; False when somebody else won."""
    result = await connection.execute(
        """
        update consent_requests
        set status = $2, decided_at = $3, updated_at = $3, birth_date = null
        where id = $1 and status = 'pending'
        """,
        request_id,
        status,
        now,
    )
    return result == "UPDATE 1"


async def count_failed_submission(connection: Connection, request_id: uuid.UUID) -> int | None:
    count: int | None = await connection.fetchval(
        """
        update consent_requests set failed_submissions = failed_submissions + 1
        where id = $1 and status = 'pending' returning failed_submissions
        """,
        request_id,
    )
    return count


async def forget_guardian(connection: Connection, request_id: uuid.UUID) -> None:
    """The guardian was told their address goes when no answer is needed any more."""
    await connection.execute(
        """
        update consent_requests
        set guardian_email_enc = null, guardian_email_hash = null, child_hint_enc = null
        where id = $1
        """,
        request_id,
    )


async def erase_after_withdrawal(connection: Connection, request_id: uuid.UUID) -> None:
    """The request of a consent the guardian withdrew: address, lookup hash and birth date go;
    what it asked, when and under which notice stays as evidence (and the link's hash until
    the purge, so the used link still says so)."""
    await connection.execute(
        """
        update consent_requests
        set guardian_email_enc = null, guardian_email_hash = null, birth_date = null,
            child_hint_enc = null
        where id = $1
        """,
        request_id,
    )


async def recent_requests_for_guardian(
    connection: Connection, email_hashes: list[bytes], since: datetime
) -> list[datetime]:
    rows = await connection.fetch(
        """
        select created_at from consent_requests
        where guardian_email_hash = any($1::bytea[]) and created_at > $2 order by created_at
        """,
        email_hashes,
        since,
    )
    return [row["created_at"] for row in rows]


async def expire_overdue(connection: Connection, now: datetime) -> list[ConsentRequest]:
    """Close pending requests past their expiry (``lifecycle.request_status_at`` in SQL).

    The guardian was told the address is deleted when the link expires unanswered.
    """
    rows = await connection.fetch(
        f"""
        update consent_requests
        set status = 'expired', decided_at = $1, updated_at = $1, birth_date = null,
            guardian_email_enc = null, guardian_email_hash = null, child_hint_enc = null
        where id in (
            select id from consent_requests
            where status = 'pending' and expires_at <= $1
            order by expires_at limit 500
            for update skip locked
        )
        returning {_COLUMNS}
        """,
        now,
    )
    return [msgspec.convert(dict(row), ConsentRequest) for row in rows]


class PurgedRequest(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    status: RequestStatus
    subject_id: str
    guardian_ref: str


async def purge_closed(
    connection: Connection,
    *,
    now: datetime,
    denied_before: datetime,
    closed_before: datetime,
    limit: int,
) -> list[PurgedRequest]:
    """Remove the personal data of requests denied, or expired or cancelled, long enough ago."""
    rows = await connection.fetch(
        """
        update consent_requests
        set guardian_email_enc = null, guardian_email_hash = null, child_hint_enc = null,
            link_token_hash = null, reminder_link_token_hash = null,
            handoff_link_token_hash = null, birth_date = null,
            purged_at = $1, updated_at = $1
        where id in (
            select id from consent_requests
            where purged_at is null
              and ((status = 'denied' and decided_at <= $2)
                or (status in ('expired', 'cancelled') and decided_at <= $3))
            order by decided_at limit $4
            for update skip locked
        )
        returning id, status, subject_id, guardian_ref
        """,
        now,
        denied_before,
        closed_before,
        limit,
    )
    return [msgspec.convert(dict(row), PurgedRequest) for row in rows]


async def purge_answered(
    connection: Connection, request_ids: list[uuid.UUID], now: datetime
) -> None:
    """Remove the guardian's address and link of requests whose consent was purged."""
    await connection.execute(
        """
        update consent_requests
        set guardian_email_enc = null, guardian_email_hash = null, child_hint_enc = null,
            link_token_hash = null, reminder_link_token_hash = null,
            handoff_link_token_hash = null, purged_at = $2,
            updated_at = $2
        where id = any($1::uuid[]) and purged_at is null
        """,
        request_ids,
        now,
    )


async def pseudonymize(
    connection: Connection,
    request_ids: list[uuid.UUID],
    subject_pseudonyms: list[str],
    guardian_pseudonyms: list[str],
) -> None:
    """Replace the subject id and guardian reference of purged requests by their pseudonyms."""
    await connection.execute(
        """
        update consent_requests r set subject_id = p.subject_id, guardian_ref = p.guardian_ref
        from unnest($1::uuid[], $2::text[], $3::text[]) as p (id, subject_id, guardian_ref)
        where r.id = p.id
        """,
        request_ids,
        subject_pseudonyms,
        guardian_pseudonyms,
    )


async def due_for_reminder(
    connection: Connection, *, now: datetime, lead: timedelta, limit: int = 500
) -> list[uuid.UUID]:
    """Pending requests whose link expires within ``lead`` and whose guardian was not reminded
    yet; a request whose whole lifetime is shorter than ``lead`` gets none (its first email is
    recent enough). Not locked: each is locked and checked again when it is reminded."""
    rows = await connection.fetch(
        """
        select id from consent_requests
        where status = 'pending' and reminded_at is null and guardian_email_enc is not null
          and expires_at > $1 and expires_at <= $1 + $2::interval
          and created_at < expires_at - $2::interval
        order by expires_at limit $3
        """,
        now,
        lead,
        limit,
    )
    return [row["id"] for row in rows]


async def lock_request(connection: Connection, request_id: uuid.UUID) -> ConsentRequest | None:
    row = await connection.fetchrow(
        f"select {_COLUMNS} from consent_requests where id = $1 for update", request_id
    )
    return _convert(row)


async def set_reminded(
    connection: Connection, request_id: uuid.UUID, *, link_token_hash: bytes, now: datetime
) -> bool:
    """Record a reminder and its link; only while the request is pending."""
    result = await connection.execute(
        """
        update consent_requests
        set reminded_at = $2, reminder_link_token_hash = $3, updated_at = $2
        where id = $1 and status = 'pending'
        """,
        request_id,
        now,
        link_token_hash,
    )
    return result == "UPDATE 1"


async def mark_reminder_skipped(
    connection: Connection, request_id: uuid.UUID, now: datetime
) -> None:
    """The sweep's reminder was not sent (over the address's limit): none comes later either.
    Recorded as reminded, without a link, so it counts against the address like a sent one."""
    await connection.execute(
        "update consent_requests set reminded_at = $2, updated_at = $2 "
        "where id = $1 and reminded_at is null",
        request_id,
        now,
    )


async def recent_reminders_for_guardian(
    connection: Connection, email_hashes: list[bytes], since: datetime
) -> list[datetime]:
    rows = await connection.fetch(
        """
        select reminded_at from consent_requests
        where guardian_email_hash = any($1::bytea[]) and reminded_at > $2 order by reminded_at
        """,
        email_hashes,
        since,
    )
    return [row["reminded_at"] for row in rows]


async def clear_failed_submissions(
    connection: Connection, request_id: uuid.UUID
) -> ConsentRequest | None:
    """Unlock a pending request's review link (support's unlock); None when not pending."""
    row = await connection.fetchrow(
        f"""
        update consent_requests set failed_submissions = 0
        where id = $1 and status = 'pending'
        returning {_COLUMNS}
        """,
        request_id,
    )
    return _convert(row)
