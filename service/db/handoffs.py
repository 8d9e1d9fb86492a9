"""SQL for handoffs (a request's second channel, on the parent's own device)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import msgspec

from service.db.connection import Connection

_COLUMNS = """
    request_id, code_hash, created_at, expires_at, opened_at, email_enc, otp_hash,
    otp_expires_at, otp_sends, strikes, confirmed_at, proved_at
"""


class Handoff(msgspec.Struct, frozen=True, kw_only=True):
    request_id: uuid.UUID
    code_hash: bytes
    created_at: datetime
    expires_at: datetime
    opened_at: datetime | None
    email_enc: bytes | None
    otp_hash: bytes | None
    otp_expires_at: datetime | None
    otp_sends: int
    strikes: int
    confirmed_at: datetime | None
    # the parent proved the address the request was opened with (it was never replaced)
    proved_at: datetime | None = None


def _convert(row: asyncpg.Record | None) -> Handoff | None:
    return msgspec.convert(dict(row), Handoff) if row else None


async def insert(
    connection: Connection,
    *,
    request_id: uuid.UUID,
    code_hash: bytes,
    now: datetime,
    expires_at: datetime,
) -> None:
    await connection.execute(
        """
        insert into consent_handoffs (request_id, code_hash, created_at, expires_at)
        values ($1, $2, $3, $4)
        """,
        request_id,
        code_hash,
        now,
        expires_at,
    )


async def for_request(
    connection: Connection, request_id: uuid.UUID, *, for_update: bool = False
) -> Handoff | None:
    lock = " for update" if for_update else ""
    row = await connection.fetchrow(
        f"select {_COLUMNS} from consent_handoffs where request_id = $1{lock}", request_id
    )
    return _convert(row)


async def find_by_code(
    connection: Connection, code_hash: bytes, *, for_update: bool = False
) -> Handoff | None:
    lock = " for update" if for_update else ""
    row = await connection.fetchrow(
        f"select {_COLUMNS} from consent_handoffs where code_hash = $1{lock}", code_hash
    )
    return _convert(row)


async def find_by_session(
    connection: Connection, session_hash: bytes, *, for_update: bool = False
) -> Handoff | None:
    lock = " for update" if for_update else ""
    row = await connection.fetchrow(
        f"select {_COLUMNS} from consent_handoffs where session_hash = $1{lock}", session_hash
    )
    return _convert(row)


async def replace_code(
    connection: Connection, request_id: uuid.UUID, code_hash: bytes, now: datetime
) -> datetime | None:
    """Conditional: only a code not entered yet and not expired is replaced (its expiry stays);
    the new expiry, or None when there is nothing to replace."""
    expires_at: datetime | None = await connection.fetchval(
        """
        update consent_handoffs set code_hash = $2
        where request_id = $1 and opened_at is null and expires_at > $3 and strikes < $4
        returning expires_at
        """,
        request_id,
        code_hash,
        now,
        MAX_STRIKES,
    )
    return expires_at


# The handoff locks at this many wrong one-time codes or refused forms.
MAX_STRIKES = 5


async def open_with_code(
    connection: Connection, request_id: uuid.UUID, session_hash: bytes, now: datetime
) -> bool:
    """Conditional: the code works once, before it expires; False when somebody else won."""
    result = await connection.execute(
        """
        update consent_handoffs set opened_at = $3, session_hash = $2
        where request_id = $1 and opened_at is null and expires_at > $3 and strikes < $4
        """,
        request_id,
        session_hash,
        now,
        MAX_STRIKES,
    )
    return result == "UPDATE 1"


async def set_pending_address(
    connection: Connection,
    request_id: uuid.UUID,
    *,
    email_enc: bytes | None,
    otp_hash: bytes,
    otp_expires_at: datetime,
) -> None:
    await connection.execute(
        """
        update consent_handoffs
        set email_enc = $2, otp_hash = $3, otp_expires_at = $4, otp_sends = otp_sends + 1
        where request_id = $1
        """,
        request_id,
        email_enc,
        otp_hash,
        otp_expires_at,
    )


async def strike(connection: Connection, request_id: uuid.UUID) -> int:
    """Count a wrong code or refused form; at ``MAX_STRIKES`` the session ends and the
    unconfirmed address is deleted."""
    strikes: int = await connection.fetchval(
        """
        update consent_handoffs
        set strikes = strikes + 1,
            session_hash = case when strikes + 1 >= $2 then null else session_hash end,
            email_enc = case when strikes + 1 >= $2 then null else email_enc end,
            otp_hash = case when strikes + 1 >= $2 then null else otp_hash end
        where request_id = $1
        returning strikes
        """,
        request_id,
        MAX_STRIKES,
    )
    return strikes


async def confirm(connection: Connection, request_id: uuid.UUID, now: datetime) -> bool:
    """Conditional: the address is confirmed once; the session, the one-time code and the
    unconfirmed copy of the address end with it."""
    result = await connection.execute(
        """
        update consent_handoffs
        set confirmed_at = $2, session_hash = null, email_enc = null, otp_hash = null,
            otp_expires_at = null
        where request_id = $1 and confirmed_at is null and otp_hash is not null
        """,
        request_id,
        now,
    )
    return result == "UPDATE 1"


async def set_guardian(
    connection: Connection,
    request_id: uuid.UUID,
    *,
    guardian_email_enc: bytes,
    guardian_email_hash: bytes,
    guardian_ref: str,
    link_token_hash: bytes,
    now: datetime,
) -> bool:
    """Conditional: the confirmed address becomes the guardian address of a pending request
    that has none yet (one given by the app, or confirmed meanwhile, is never replaced), and a
    new review link replaces the earlier ones."""
    result = await connection.execute(
        """
        update consent_requests
        set guardian_email_enc = $2, guardian_email_hash = $3, guardian_ref = $4,
            link_token_hash = $5, reminder_link_token_hash = null, updated_at = $6
        where id = $1 and status = 'pending' and expires_at > $6
          and guardian_email_enc is null and guardian_email_hash is null
        """,
        request_id,
        guardian_email_enc,
        guardian_email_hash,
        guardian_ref,
        link_token_hash,
        now,
    )
    return result == "UPDATE 1"


async def prove(connection: Connection, request_id: uuid.UUID, now: datetime) -> bool:
    """Conditional: the parent proved the address on file once; the session and the one-time
    code end with it."""
    result = await connection.execute(
        """
        update consent_handoffs
        set proved_at = $2, session_hash = null, email_enc = null, otp_hash = null,
            otp_expires_at = null
        where request_id = $1 and proved_at is null and confirmed_at is null
          and otp_hash is not null
        """,
        request_id,
        now,
    )
    return result == "UPDATE 1"


async def set_review_link(
    connection: Connection, request_id: uuid.UUID, link_token_hash: bytes, now: datetime
) -> bool:
    """Conditional: a review link of the handoff's own for a pending request that keeps its
    address and its emailed links."""
    result = await connection.execute(
        """
        update consent_requests set handoff_link_token_hash = $2, updated_at = $3
        where id = $1 and status = 'pending' and expires_at > $3
          and guardian_email_enc is not null
        """,
        request_id,
        link_token_hash,
        now,
    )
    return result == "UPDATE 1"


async def clear_finished_sessions(connection: Connection, opened_before: datetime) -> int:
    """The session, one-time code and unconfirmed address of handoffs whose session's time
    is over (opened before ``opened_before``)."""
    result = await connection.execute(
        """
        update consent_handoffs
        set session_hash = null, email_enc = null, otp_hash = null, otp_expires_at = null
        where opened_at <= $1
          and (session_hash is not null or email_enc is not null or otp_hash is not null)
        """,
        opened_before,
    )
    return int(result.split()[-1])


async def address_came_by_handoff(connection: Connection, request_id: uuid.UUID) -> bool:
    """Whether the request's guardian address is one the parent gave and confirmed themselves."""
    confirmed: bool = await connection.fetchval(
        """
        select exists (
            select 1 from consent_handoffs where request_id = $1 and confirmed_at is not null
        )
        """,
        request_id,
    )
    return confirmed
