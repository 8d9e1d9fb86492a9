"""SQL of the guardian dashboard: sign-in links, sessions, the consents of an address, and the
short-lived links to a consent's pages. Tokens and session ids are found by their hash only."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import msgspec

from service.db import consent_requests as requests_repo
from service.db import consents as consents_repo
from service.db.connection import Connection
from service.db.consent_requests import ConsentRequest
from service.db.consents import Consent


class GuardianSession(msgspec.Struct, frozen=True, kw_only=True):
    id_hash: bytes
    guardian_email_hashes: list[bytes]
    # the exact address's reference (consents.guardian_ref): what authorizes; None authorizes
    # nothing (a session from before it was stored)
    guardian_ref: str | None
    locale: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ended_at: datetime | None


class SignInLink(msgspec.Struct, frozen=True, kw_only=True):
    token_hash: bytes
    guardian_email_hashes: list[bytes]
    guardian_ref: str | None
    locale: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


class GuardianConsent(msgspec.Struct, frozen=True, kw_only=True):
    """One consent of the address: the newest per child."""

    consent_id: uuid.UUID
    request_id: uuid.UUID


async def insert_sign_in_link(
    connection: Connection,
    *,
    token_hash: bytes,
    email_hashes: list[bytes],
    guardian_ref: str,
    locale: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    await connection.execute(
        """
        insert into guardian_sign_in_links (
            token_hash, guardian_email_hashes, guardian_ref, locale, created_at, expires_at
        ) values ($1, $2, $3, $4, $5, $6)
        """,
        token_hash,
        email_hashes,
        guardian_ref,
        locale,
        now,
        expires_at,
    )


async def sign_in_links_since(
    connection: Connection, email_hashes: list[bytes], since: datetime
) -> int:
    """How many sign-in links went to the address since ``since``."""
    count = await connection.fetchval(
        "select count(*) from guardian_sign_in_links "
        "where guardian_email_hashes && $1::bytea[] and created_at > $2",
        email_hashes,
        since,
    )
    return int(count)


async def find_sign_in_link(connection: Connection, token_hash: bytes) -> SignInLink | None:
    row = await connection.fetchrow(
        """
        select token_hash, guardian_email_hashes, guardian_ref, locale, created_at, expires_at,
               used_at
        from guardian_sign_in_links where token_hash = $1
        """,
        token_hash,
    )
    return msgspec.convert(dict(row), SignInLink) if row else None


async def use_sign_in_link(
    connection: Connection, token_hash: bytes, now: datetime
) -> SignInLink | None:
    """Use the link once: None when it is unknown, used or expired (two presses: one wins)."""
    row = await connection.fetchrow(
        """
        update guardian_sign_in_links set used_at = $2
        where token_hash = $1 and used_at is null and expires_at > $2
        returning token_hash, guardian_email_hashes, guardian_ref, locale, created_at,
                  expires_at, used_at
        """,
        token_hash,
        now,
    )
    return msgspec.convert(dict(row), SignInLink) if row else None


async def insert_session(
    connection: Connection,
    *,
    id_hash: bytes,
    email_hashes: list[bytes],
    guardian_ref: str | None,
    locale: str,
    now: datetime,
    idle_until: datetime,
    expires_at: datetime,
) -> None:
    await connection.execute(
        """
        insert into guardian_sessions (
            id_hash, guardian_email_hashes, guardian_ref, locale, created_at, last_seen_at,
            idle_until, expires_at
        ) values ($1, $2, $3, $4, $5, $5, $6, $7)
        """,
        id_hash,
        email_hashes,
        guardian_ref,
        locale,
        now,
        idle_until,
        expires_at,
    )


async def find_session(connection: Connection, id_hash: bytes) -> GuardianSession | None:
    row = await connection.fetchrow(
        """
        select id_hash, guardian_email_hashes, guardian_ref, locale, created_at, last_seen_at,
               expires_at, ended_at
        from guardian_sessions where id_hash = $1
        """,
        id_hash,
    )
    return msgspec.convert(dict(row), GuardianSession) if row else None


async def touch_session(
    connection: Connection, id_hash: bytes, now: datetime, idle_until: datetime
) -> None:
    await connection.execute(
        "update guardian_sessions set last_seen_at = greatest(last_seen_at, $2), "
        "idle_until = greatest(idle_until, $3) "
        "where id_hash = $1 and ended_at is null",
        id_hash,
        now,
        idle_until,
    )


async def end_session(connection: Connection, id_hash: bytes, now: datetime) -> None:
    await connection.execute(
        "update guardian_sessions set ended_at = $2 where id_hash = $1 and ended_at is null",
        id_hash,
        now,
    )


async def delete_consent_links_of(connection: Connection, session_id_hash: bytes) -> None:
    await connection.execute(
        "delete from guardian_consent_links where session_id_hash = $1", session_id_hash
    )


def _consent_pairs(rows: list[asyncpg.Record]) -> list[tuple[Consent, ConsentRequest]]:
    return [
        (
            consents_repo.consent_from_row(row["consent"]),
            requests_repo.request_from_row(row["request"]),
        )
        for row in rows
    ]


async def consents_of(
    connection: Connection, email_hashes: list[bytes], guardian_ref: str | None
) -> list[tuple[Consent, ConsentRequest]]:
    """The newest consent per child (with its request) that the exact address gave.

    The lookup hashes (a +tag stripped) only find the candidates; ``guardian_ref`` (the exact
    address, its local part's case aside) decides. None finds nothing."""
    rows = await connection.fetch(
        """
        select distinct on (c.subject_id) c as consent, r as request
        from consents c join consent_requests r on r.id = c.request_id
        where r.guardian_email_hash = any($1::bytea[]) and c.guardian_ref = $2
        order by c.subject_id, c.granted_at desc
        """,
        email_hashes,
        guardian_ref,
    )
    return _consent_pairs(rows)


async def consent_of(
    connection: Connection,
    email_hashes: list[bytes],
    guardian_ref: str | None,
    consent_id: uuid.UUID,
) -> GuardianConsent | None:
    """The consent if this exact address gave it, else None (another guardian's child)."""
    row = await connection.fetchrow(
        """
        select c.id as consent_id, c.request_id
        from consents c join consent_requests r on r.id = c.request_id
        where c.id = $3 and r.guardian_email_hash = any($1::bytea[]) and c.guardian_ref = $2
        """,
        email_hashes,
        guardian_ref,
        consent_id,
    )
    return msgspec.convert(dict(row), GuardianConsent) if row else None


async def insert_consent_link(
    connection: Connection,
    *,
    token_hash: bytes,
    consent_id: uuid.UUID,
    session_id_hash: bytes,
    now: datetime,
    expires_at: datetime,
) -> None:
    await connection.execute(
        """
        insert into guardian_consent_links (
            token_hash, consent_id, session_id_hash, created_at, expires_at
        ) values ($1, $2, $3, $4, $5)
        """,
        token_hash,
        consent_id,
        session_id_hash,
        now,
        expires_at,
    )


async def delete_finished(connection: Connection, before: datetime) -> None:
    """Forget links and sessions that ended before ``before``."""
    await connection.execute("delete from guardian_sign_in_links where expires_at < $1", before)
    await connection.execute(
        "delete from guardian_sessions where coalesce(ended_at, expires_at) < $1 "
        "or expires_at < $1",
        before,
    )
    await connection.execute("delete from guardian_consent_links where expires_at < $1", before)
