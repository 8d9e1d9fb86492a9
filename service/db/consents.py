"""SQL for consent records and the check read path."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta

import asyncpg
import msgspec

from service.db.connection import Connection
from service.states import ConsentStatus, RequestStatus

_COLUMNS = """
    id, request_id, subject_id, status, purposes, jurisdiction, method, policy_version,
    guardian_ref, granted_at, expires_at, ended_at, end_reason, token, purpose_methods,
    withdrawn_purposes, withdraw_failed_submissions, withdraw_locked_until
"""


LAPSE_REASON = "lapsed: the child reached the age of consent or the maximum validity"
RECONSENT_LAPSE_REASON = (
    "re-consent not given: the notice changed and the guardian did not consent again before "
    "the grace period ended"
)
# Why a lapse happened, in SQL: a consent whose re-consent deadline brought its end forward
# ended for that reason, any other for LAPSE_REASON ($lapse and $reconsent below).
_LAPSE_REASON_SQL = """
    case when reconsent_due_at is not null and expires_at = reconsent_due_at then {reconsent}
         else {lapse} end
"""
_SUPERSEDE_LAPSE_REASON = _LAPSE_REASON_SQL.format(lapse="$3", reconsent="$4")
_SWEEP_LAPSE_REASON = _LAPSE_REASON_SQL.format(lapse="$2", reconsent="$3")


# The consent of a dashboard's consent link ($1: its hash) at $2: unexpired, and issued by a
# session not signed out, not past its end and not idle.
_LIVE_DASHBOARD_LINK = """
    select l.consent_id from guardian_consent_links l
    join guardian_sessions s on s.id_hash = l.session_id_hash
    where l.token_hash = $1 and l.expires_at > $2
      and s.ended_at is null and s.expires_at > $2 and s.idle_until > $2
"""


class PurposeWithdrawal(msgspec.Struct, frozen=True, kw_only=True):
    """One purpose the guardian withdrew while the rest of the consent stayed live."""

    purpose: str
    withdrawn_at: datetime


class Consent(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    request_id: uuid.UUID
    subject_id: str
    status: ConsentStatus
    purposes: list[str]
    jurisdiction: str
    method: str
    policy_version: str
    guardian_ref: str
    granted_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    token: str | None
    # how each purpose was verified ({purpose: method})
    purpose_methods: dict[str, str]
    withdrawn_purposes: list[PurposeWithdrawal]
    withdraw_failed_submissions: int
    withdraw_locked_until: datetime | None


class CheckRow(msgspec.Struct, frozen=True, kw_only=True):
    consent_id: uuid.UUID | None
    consent_status: ConsentStatus | None
    consent_purposes: list[str] | None
    consent_expires_at: datetime | None
    consent_changed_at: datetime | None
    token: str | None
    request_status: RequestStatus | None
    request_expires_at: datetime | None
    request_changed_at: datetime | None
    # processing restricted (GDPR Art. 18): no purpose is allowed, whatever the rest says
    restricted: bool = False


def _consent(row: asyncpg.Record) -> Consent:
    fields = dict(row)
    fields["purpose_methods"] = msgspec.json.decode(fields["purpose_methods"])
    fields["withdrawn_purposes"] = msgspec.json.decode(fields["withdrawn_purposes"])
    return msgspec.convert(fields, Consent)


def consent_from_row(row: asyncpg.Record) -> Consent:
    """A consent from a row (or a ``consents`` composite) that has its columns."""
    return _consent(row)


def _convert(row: asyncpg.Record | None) -> Consent | None:
    return _consent(row) if row else None


async def get_consent(
    connection: Connection, consent_id: uuid.UUID, *, for_update: bool = False
) -> Consent | None:
    lock = " for update" if for_update else ""
    row = await connection.fetchrow(
        f"select {_COLUMNS} from consents where id = $1{lock}", consent_id
    )
    return _convert(row)


async def find_by_withdraw_token(
    connection: Connection,
    token_hash: bytes,
    *,
    for_update: bool = False,
    now: datetime | None = None,
) -> Consent | None:
    """The consent of a withdrawal link; with ``now``, also of a dashboard's consent link
    (``guardian_consent_links``) that has not expired by then and whose session is live."""
    lock = " for update" if for_update else ""
    row = await connection.fetchrow(
        f"""
        select {_COLUMNS} from consents
        where withdraw_token_hash = $1
           or ($2::timestamptz is not null and id = ({_LIVE_DASHBOARD_LINK}))
        {lock}
        """,
        token_hash,
        now,
    )
    return _convert(row)


async def is_withdraw_token(
    connection: Connection, consent_id: uuid.UUID, token_hash: bytes
) -> bool:
    """Whether the hash is the consent's own withdrawal link (not a short-lived one)."""
    found = await connection.fetchval(
        "select exists (select 1 from consents where id = $1 and withdraw_token_hash = $2)",
        consent_id,
        token_hash,
    )
    return bool(found)


async def supersede_live(connection: Connection, subject_id: str, now: datetime) -> list[Consent]:
    """End the subject's live consent for a new one: superseded, or expired when it had lapsed
    already (``lifecycle.consent_status_at`` in SQL)."""
    rows = await connection.fetch(
        f"""
        update consents
        set status = case when expires_at <= $2 then 'expired' else 'superseded' end,
            ended_at = least(expires_at, $2),
            updated_at = $2,
            end_reason = case when expires_at <= $2 then {_SUPERSEDE_LAPSE_REASON}
                              else 'replaced by a newer consent' end
        where subject_id = $1 and status = 'granted'
        returning {_COLUMNS}
        """,
        subject_id,
        now,
        LAPSE_REASON,
        RECONSENT_LAPSE_REASON,
    )
    return [_consent(row) for row in rows]


async def insert_consent(
    connection: Connection,
    *,
    consent_id: uuid.UUID,
    request_id: uuid.UUID,
    subject_id: str,
    purposes: list[str],
    jurisdiction: str,
    method: str,
    purpose_methods: Mapping[str, str],
    policy_version: str,
    guardian_ref: str,
    granted_at: datetime,
    expires_at: datetime,
    token: str,
    withdraw_token_hash: bytes,
) -> None:
    await connection.execute(
        """
        insert into consents (
            id, request_id, subject_id, status, purposes, jurisdiction, method, policy_version,
            guardian_ref, granted_at, expires_at, token, withdraw_token_hash, updated_at,
            purpose_methods
        ) values ($1, $2, $3, 'granted', $4, $5, $6, $7, $8, $9, $10, $11, $12, $9, $13::jsonb)
        """,
        consent_id,
        request_id,
        subject_id,
        purposes,
        jurisdiction,
        method,
        policy_version,
        guardian_ref,
        granted_at,
        expires_at,
        token,
        withdraw_token_hash,
        msgspec.json.encode(purpose_methods).decode(),
    )


async def end_consent(
    connection: Connection,
    consent_id: uuid.UUID,
    *,
    status: ConsentStatus,
    reason: str,
    now: datetime,
) -> Consent | None:
    """Conditional: ends only a live consent; None when it was no longer live."""
    row = await connection.fetchrow(
        f"""
        update consents set status = $2, end_reason = $3, ended_at = $4, updated_at = $4
        where id = $1 and status = 'granted'
        returning {_COLUMNS}
        """,
        consent_id,
        status,
        reason,
        now,
    )
    return _convert(row)


async def erase_after_withdrawal(
    connection: Connection, consent_id: uuid.UUID, now: datetime
) -> None:
    """A withdrawn consent keeps its record (the evidence) but not its token, which names
    the child and the guardian. The withdrawal link's hash stays until the purge: it is no
    personal data, and a link opened again says the consent was withdrawn."""
    await connection.execute(
        """
        update consents set token = null, erased_at = $2
        where id = $1 and status <> 'granted'
        """,
        consent_id,
        now,
    )


async def withdraw_purposes(
    connection: Connection,
    consent_id: uuid.UUID,
    *,
    remaining: list[str],
    withdrawn: list[str],
    token: str,
    now: datetime,
) -> Consent | None:
    """Conditional: shrinks only a live consent to ``remaining``, records ``withdrawn`` with
    their time and stores the re-issued ``token``; None when it was no longer live."""
    row = await connection.fetchrow(
        f"""
        update consents
        set purposes = $2, token = $4, updated_at = $5,
            withdrawn_purposes = withdrawn_purposes || (
                select coalesce(jsonb_agg(jsonb_build_object(
                    'purpose', p, 'withdrawn_at', to_jsonb($5::timestamptz)) order by n), '[]')
                from unnest($3::text[]) with ordinality as w(p, n)
            )
        where id = $1 and status = 'granted'
        returning {_COLUMNS}
        """,
        consent_id,
        remaining,
        withdrawn,
        token,
        now,
    )
    return _convert(row)


async def count_failed_withdrawal(
    connection: Connection,
    token_hash: bytes,
    *,
    now: datetime,
    limit: int,
    lock_for: timedelta,
) -> datetime | None:
    """Count a refused submission on a live consent's withdrawal link (or on a dashboard's
    live consent link to it); the ``limit``-th locks the link until the returned time (and
    the count starts again). None: not locked."""
    locked_until: datetime | None = await connection.fetchval(
        f"""
        update consents
        set withdraw_failed_submissions = case
                when withdraw_failed_submissions + 1 >= $3 then 0
                else withdraw_failed_submissions + 1 end,
            withdraw_locked_until = case
                when withdraw_failed_submissions + 1 >= $3 then $2::timestamptz + $4::interval
                else withdraw_locked_until end
        where (withdraw_token_hash = $1 or id = ({_LIVE_DASHBOARD_LINK})) and status = 'granted'
        returning case when withdraw_locked_until > $2 then withdraw_locked_until end
        """,
        token_hash,
        now,
        limit,
        lock_for,
    )
    return locked_until


async def expire_lapsed(connection: Connection, now: datetime) -> list[Consent]:
    """Write down the lapse of granted consents past ``expires_at``
    (``lifecycle.consent_status_at`` in SQL)."""
    rows = await connection.fetch(
        f"""
        update consents
        set status = 'expired', ended_at = expires_at, updated_at = $1,
            end_reason = {_SWEEP_LAPSE_REASON}
        where id in (
            select id from consents
            where status = 'granted' and expires_at <= $1
            order by expires_at limit 500
            for update skip locked
        )
        returning {_COLUMNS}
        """,
        now,
        LAPSE_REASON,
        RECONSENT_LAPSE_REASON,
    )
    return [_consent(row) for row in rows]


async def claim_lapsing_notices(
    connection: Connection, *, now: datetime, lapsing_before: datetime, limit: int = 500
) -> list[Consent]:
    """Mark live consents that lapse before ``lapsing_before`` as notified and return them; a
    consent is returned once (two workers skip each other's rows)."""
    rows = await connection.fetch(
        f"""
        update consents set lapsing_notified_at = $1
        where id in (
            select id from consents
            where status = 'granted' and lapsing_notified_at is null
              and expires_at > $1 and expires_at <= $2
            order by expires_at limit $3
            for update skip locked
        )
        returning {_COLUMNS}
        """,
        now,
        lapsing_before,
        limit,
    )
    return [_consent(row) for row in rows]


class ReconsentCandidate(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    subject_id: str


async def live_on_other_notices(
    connection: Connection, current: dict[str, str], now: datetime
) -> list[ReconsentCandidate]:
    """Live consents whose notice version is not the current one of their language (their
    request's locale); ``current`` maps each language to its current version."""
    rows = await connection.fetch(
        """
        select c.id, c.subject_id
        from consents c join consent_requests r on r.id = c.request_id
        where c.status = 'granted' and c.expires_at > $1
          and c.policy_version is distinct from (
              select v.version from unnest($2::text[], $3::text[]) as v (locale, version)
              where v.locale = r.locale
          )
        order by c.granted_at
        """,
        now,
        list(current),
        list(current.values()),
    )
    return [msgspec.convert(dict(row), ReconsentCandidate) for row in rows]


async def set_reconsent_due(
    connection: Connection, consent_id: uuid.UUID, due: datetime, now: datetime
) -> Consent | None:
    """Bring a live consent's end forward to ``due`` (never later than it was)."""
    row = await connection.fetchrow(
        f"""
        update consents
        set reconsent_due_at = $2, expires_at = least(expires_at, $2), updated_at = $3
        where id = $1 and status = 'granted' and expires_at > $3
        returning {_COLUMNS}
        """,
        consent_id,
        due,
        now,
    )
    return _convert(row)


CHECK_QUERY = """
select c.id as consent_id, c.status as consent_status, c.purposes as consent_purposes,
       c.expires_at as consent_expires_at, coalesce(c.ended_at, c.granted_at) as consent_changed_at,
       c.token,
       r.status as request_status, r.expires_at as request_expires_at,
       coalesce(r.decided_at, r.created_at) as request_changed_at
from (select 1) as one
left join lateral (
    select id, status, purposes, expires_at, ended_at, granted_at, token
    from consents where subject_id in ($1, $2)
    order by granted_at desc limit 1
) as c on true
left join lateral (
    select status, expires_at, decided_at, created_at
    from consent_requests
    where subject_id in ($1, $2) and status in ('pending', 'denied', 'expired')
    order by created_at desc limit 1
) as r on true
"""


# Stored as granted; whether it has lapsed meanwhile is for ``lifecycle.consent_status_at``.
# Always one row: a restriction, then the live consent if there is one.
LIVE_CONSENT_QUERY = """
select exists (select 1 from subject_restrictions where subject_id = $1) as restricted,
       c.id, c.purposes, c.expires_at, c.granted_at, c.token
from (select 1) as one
left join consents c on c.subject_id = $1 and c.status = 'granted'
"""

_RESTRICTED = CheckRow(
    consent_id=None,
    consent_status=None,
    consent_purposes=None,
    consent_expires_at=None,
    consent_changed_at=None,
    token=None,
    request_status=None,
    request_expires_at=None,
    request_changed_at=None,
    restricted=True,
)


async def check_row(
    connection: Connection, subject_id: str, pseudonym: str | None = None
) -> CheckRow:
    """The subject's check state; ``pseudonym``: what its records purged after retention keep
    instead of its id (``DataProtector.subject_pseudonym``), so they still answer."""
    # Most checks are for a subject with a live consent, and a live consent answers alone:
    # one probe of the partial unique index (and one of the restrictions' primary key). Only
    # without one is the history read.
    live = await connection.fetchrow(LIVE_CONSENT_QUERY, subject_id)
    assert live is not None  # the query always yields exactly one row
    if live["restricted"]:
        return _RESTRICTED
    if live["id"] is not None:
        return CheckRow(
            consent_id=live["id"],
            consent_status=ConsentStatus.GRANTED,
            consent_purposes=live["purposes"],
            consent_expires_at=live["expires_at"],
            consent_changed_at=live["granted_at"],
            token=live["token"],
            request_status=None,
            request_expires_at=None,
            request_changed_at=None,
        )
    row = await connection.fetchrow(CHECK_QUERY, subject_id, pseudonym or subject_id)
    assert row is not None  # the query always yields exactly one row
    return msgspec.convert(dict(row), CheckRow)


class PurgedConsent(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    request_id: uuid.UUID
    status: ConsentStatus
    subject_id: str
    guardian_ref: str


async def purge_ended(
    connection: Connection,
    *,
    now: datetime,
    ended_before: datetime,
    expired_before: datetime,
    limit: int,
) -> list[PurgedConsent]:
    """Remove the tokens of consents withdrawn, revoked or superseded, or expired, long enough
    ago."""
    rows = await connection.fetch(
        """
        update consents
        set token = null, withdraw_token_hash = null, purged_at = $1, updated_at = $1
        where id in (
            -- both rows at once, skipping any a transaction holds, so a purge never waits
            -- on a request row while holding a consent row (erasure locks the other way)
            -- the statuses listed whole, as in consents_ended_unpurged, so the index
            -- serves them in ended_at order and the scan stops after the batch
            select c.id from consents c join consent_requests r on r.id = c.request_id
            where c.purged_at is null
              and c.status in ('withdrawn', 'revoked', 'superseded', 'not_required', 'expired')
              and c.ended_at <= greatest($2::timestamptz, $3::timestamptz)
              and ((c.status <> 'expired' and c.ended_at <= $2)
                or (c.status = 'expired' and c.ended_at <= $3))
            order by c.ended_at limit $4
            for update of r, c skip locked
        )
        returning id, request_id, status, subject_id, guardian_ref
        """,
        now,
        ended_before,
        expired_before,
        limit,
    )
    return [msgspec.convert(dict(row), PurgedConsent) for row in rows]


async def pseudonymize(
    connection: Connection,
    consent_ids: list[uuid.UUID],
    subject_pseudonyms: list[str],
    guardian_pseudonyms: list[str],
) -> None:
    """Replace the subject id and guardian reference of purged consents by their pseudonyms."""
    await connection.execute(
        """
        update consents c set subject_id = p.subject_id, guardian_ref = p.guardian_ref
        from unnest($1::uuid[], $2::text[], $3::text[]) as p (id, subject_id, guardian_ref)
        where c.id = p.id
        """,
        consent_ids,
        subject_pseudonyms,
        guardian_pseudonyms,
    )


async def clear_failed_withdrawals(connection: Connection, consent_id: uuid.UUID) -> Consent | None:
    """Unlock a granted consent's withdrawal link (support's unlock); None when not granted."""
    row = await connection.fetchrow(
        f"""
        update consents set withdraw_failed_submissions = 0, withdraw_locked_until = null
        where id = $1 and status = 'granted'
        returning {_COLUMNS}
        """,
        consent_id,
    )
    return _convert(row)
