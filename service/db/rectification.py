"""SQL of rectification: ``guardian_address_changes`` (a guardian's new address waiting for its
confirmation), and the request and consent columns a confirmed address or a corrected birth
date changes."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import msgspec

from service.db.connection import Connection

_COLUMNS = """
    id, consent_id, subject_id, data_request_id, new_email_enc, requested_by, created_at,
    expires_at, confirmed_at
"""


class AddressChange(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    consent_id: uuid.UUID
    subject_id: str
    data_request_id: uuid.UUID | None
    # None once confirmed or expired
    new_email_enc: bytes | None
    requested_by: str
    created_at: datetime
    expires_at: datetime
    confirmed_at: datetime | None


async def insert(
    connection: Connection,
    *,
    change_id: uuid.UUID,
    consent_id: uuid.UUID,
    subject_id: str,
    data_request_id: uuid.UUID | None,
    new_email_enc: bytes,
    confirm_token_hash: bytes,
    requested_by: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    await connection.execute(
        """
        insert into guardian_address_changes (
            id, consent_id, subject_id, data_request_id, new_email_enc, confirm_token_hash,
            requested_by, created_at, expires_at
        ) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        change_id,
        consent_id,
        subject_id,
        data_request_id,
        new_email_enc,
        confirm_token_hash,
        requested_by,
        now,
        expires_at,
    )


async def find_by_token(
    connection: Connection, token_hash: bytes, *, for_update: bool = False
) -> AddressChange | None:
    lock = " for update" if for_update else ""
    row = await connection.fetchrow(
        f"select {_COLUMNS} from guardian_address_changes where confirm_token_hash = $1{lock}",
        token_hash,
    )
    return msgspec.convert(dict(row), AddressChange) if row else None


async def mark_confirmed(connection: Connection, change_id: uuid.UUID, now: datetime) -> bool:
    """Conditional: only a change still waiting; its address goes (it now lives in the
    consent's request). The link's hash stays, so a second use says it was used."""
    result = await connection.execute(
        """
        update guardian_address_changes
        set confirmed_at = $2, new_email_enc = null
        where id = $1 and confirmed_at is null and new_email_enc is not null
        """,
        change_id,
        now,
    )
    return result == "UPDATE 1"


async def withdraw_waiting(connection: Connection, consent_id: uuid.UUID) -> int:
    """A newer change for the same consent replaces any still waiting: their links stop
    working and their addresses go."""
    result = await connection.execute(
        """
        update guardian_address_changes set new_email_enc = null
        where consent_id = $1 and confirmed_at is null and new_email_enc is not null
        """,
        consent_id,
    )
    return int(result.split()[-1])


async def forget_expired(connection: Connection, now: datetime) -> int:
    """Blank the new address of changes whose link expired unconfirmed; the row stays as the
    record that a change was asked for (its link hash stays too, so the link says "expired")."""
    result = await connection.execute(
        """
        update guardian_address_changes set new_email_enc = null
        where new_email_enc is not null and confirmed_at is null and expires_at <= $1
        """,
        now,
    )
    return int(result.split()[-1])


async def changes_since(
    connection: Connection, consent_id: uuid.UUID, since: datetime
) -> list[datetime]:
    rows = await connection.fetch(
        """
        select created_at from guardian_address_changes
        where consent_id = $1 and created_at > $2 order by created_at
        """,
        consent_id,
        since,
    )
    return [row["created_at"] for row in rows]


async def delete_for_consents(connection: Connection, consent_ids: list[uuid.UUID]) -> None:
    """A consent erased on withdrawal or purged keeps no record of address changes: they hold
    the plain subject id and prove nothing about the consent itself."""
    await connection.execute(
        "delete from guardian_address_changes where consent_id = any($1::uuid[])", consent_ids
    )


async def delete_for_subject(connection: Connection, subject_id: str) -> None:
    await connection.execute(
        "delete from guardian_address_changes where subject_id = $1", subject_id
    )


async def set_guardian(
    connection: Connection,
    *,
    request_id: uuid.UUID,
    email_enc: bytes,
    email_hash: bytes,
    guardian_ref: str,
    now: datetime,
) -> None:
    """Give a request (the consent's, or one still pending for the same guardian) the new
    address, its lookup hash and its guardian reference."""
    await connection.execute(
        """
        update consent_requests
        set guardian_email_enc = $2, guardian_email_hash = $3, guardian_ref = $4, updated_at = $5
        where id = $1
        """,
        request_id,
        email_enc,
        email_hash,
        guardian_ref,
        now,
    )


async def pending_requests_of_guardian(
    connection: Connection, subject_id: str, guardian_ref: str
) -> list[uuid.UUID]:
    """The subject's pending requests sent to the same guardian (a re-consent request, say)."""
    rows = await connection.fetch(
        """
        select id from consent_requests
        where subject_id = $1 and status = 'pending' and guardian_ref = $2
        and guardian_email_enc is not null
        order by id
        """,
        subject_id,
        guardian_ref,
    )
    return [row["id"] for row in rows]


async def set_consent_guardian(
    connection: Connection, consent_id: uuid.UUID, *, guardian_ref: str, token: str, now: datetime
) -> bool:
    """Conditional: only a live consent takes the new guardian reference and its re-issued
    token."""
    result = await connection.execute(
        """
        update consents set guardian_ref = $2, token = $3, updated_at = $4
        where id = $1 and status = 'granted'
        """,
        consent_id,
        guardian_ref,
        token,
        now,
    )
    return result == "UPDATE 1"


# ---- birth-date corrections -----------------------------------------------------------------


async def set_request_age(
    connection: Connection,
    request_id: uuid.UUID,
    *,
    country: str,
    age_of_consent: int,
    basis: str,
    consent_required_until: date,
    joint_consent: bool,
    birth_date: date | None,
    now: datetime,
) -> None:
    """A request's age decision, recomputed from a corrected birth date. The birth date itself
    is stored only while the request is pending (the schema refuses it afterwards)."""
    await connection.execute(
        """
        update consent_requests
        set country = $2, age_of_consent = $3, basis = $4, consent_required_until = $5,
            joint_consent = $6,
            birth_date = case when status = 'pending' then $7::date else null end,
            updated_at = $8
        where id = $1
        """,
        request_id,
        country,
        age_of_consent,
        basis,
        consent_required_until,
        joint_consent,
        birth_date,
        now,
    )


async def set_consent_expiry(
    connection: Connection,
    consent_id: uuid.UUID,
    *,
    jurisdiction: str,
    expires_at: datetime,
    token: str,
    now: datetime,
) -> bool:
    """Conditional: a live consent's new end and jurisdiction, with its re-issued token; the
    notice ahead of the lapse is due again for the new date."""
    result = await connection.execute(
        """
        update consents
        set jurisdiction = $2, expires_at = $3, token = $4, updated_at = $5,
            lapsing_notified_at = null
        where id = $1 and status = 'granted'
        """,
        consent_id,
        jurisdiction,
        expires_at,
        token,
        now,
    )
    return result == "UPDATE 1"


async def reconsent_due_of(connection: Connection, consent_id: uuid.UUID) -> datetime | None:
    """The re-consent deadline that brought the consent's end forward, if any."""
    due: datetime | None = await connection.fetchval(
        "select reconsent_due_at from consents where id = $1", consent_id
    )
    return due


async def live_consent_id(connection: Connection, subject_id: str) -> uuid.UUID | None:
    found: uuid.UUID | None = await connection.fetchval(
        "select id from consents where subject_id = $1 and status = 'granted'", subject_id
    )
    return found
