"""The append-only, hash-chained audit trail.

One global chain: each event's ``chain_hash = sha256(prev_hash || content_hash)``. The content
hash commits separately to the personal fields (subject id, reason, details) through a salted
``personal_digest``, so erasure can blank those fields and the salt while every event, its
order and its non-personal content still verify.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from service.db.connection import Connection

AUDIT_CHAIN_LOCK = 0x61756469745F63  # serializes appends so the chain has one order
GENESIS = bytes(32)
GUARDIAN_ACTOR = "guardian"
SYSTEM_ACTOR = "system"


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    subject_id: str | None
    request_id: uuid.UUID | None
    consent_id: uuid.UUID | None
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    details: dict[str, Any]
    occurred_at: datetime
    redacted: bool


def _canonical(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def personal_digest(salt: bytes, subject_id: str | None, reason: str | None, details: Any) -> bytes:
    personal = {"subject_id": subject_id, "reason": reason, "details": details}
    return hashlib.sha256(salt + _canonical(personal)).digest()


def content_hash(
    digest: bytes,
    *,
    request_id: uuid.UUID | None,
    consent_id: uuid.UUID | None,
    actor: str,
    action: str,
    from_status: str | None,
    to_status: str | None,
    occurred_at: datetime,
) -> bytes:
    public = {
        "request_id": str(request_id) if request_id else None,
        "consent_id": str(consent_id) if consent_id else None,
        "actor": actor,
        "action": action,
        "from_status": from_status,
        "to_status": to_status,
        "occurred_at": occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
    }
    return hashlib.sha256(digest + _canonical(public)).digest()


def chain_hash(prev: bytes, content: bytes) -> bytes:
    return hashlib.sha256(prev + content).digest()


async def record_event(
    connection: Connection,
    *,
    actor: str,
    action: str,
    occurred_at: datetime,
    subject_id: str | None = None,
    request_id: uuid.UUID | None = None,
    consent_id: uuid.UUID | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event; call it last in the transaction, it holds the chain lock to commit."""
    details = details or {}
    salt = os.urandom(16)
    digest = personal_digest(salt, subject_id, reason, details)
    content = content_hash(
        digest,
        request_id=request_id,
        consent_id=consent_id,
        actor=actor,
        action=action,
        from_status=from_status,
        to_status=to_status,
        occurred_at=occurred_at,
    )
    await connection.execute("select pg_advisory_xact_lock($1)", AUDIT_CHAIN_LOCK)
    prev = await connection.fetchval("select chain_hash from audit_events order by id desc limit 1")
    prev = prev or GENESIS
    await connection.execute(
        """
        insert into audit_events (
            subject_id, request_id, consent_id, actor, action, from_status, to_status,
            reason, details, occurred_at, personal_salt, personal_digest, content_hash,
            prev_hash, chain_hash
        ) values ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13, $14, $15)
        """,
        subject_id,
        request_id,
        consent_id,
        actor,
        action,
        from_status,
        to_status,
        reason,
        json.dumps(details),
        occurred_at,
        salt,
        digest,
        content,
        prev,
        chain_hash(prev, content),
    )


async def subject_events(connection: Connection, subject_id: str) -> list[AuditEvent]:
    rows = await connection.fetch(
        """
        select id, subject_id, request_id, consent_id, actor, action, from_status, to_status,
               reason, details, occurred_at, redacted
        from audit_events where subject_id = $1 order by id
        """,
        subject_id,
    )
    return [_to_event(row) for row in rows]


def _to_event(row: asyncpg.Record) -> AuditEvent:
    values = dict(row)
    values["details"] = json.loads(values["details"])
    return msgspec.convert(values, AuditEvent)


class ChainBreak(msgspec.Struct, frozen=True, kw_only=True):
    event_id: int
    problem: str


async def verify_chain(connection: Connection) -> tuple[int, ChainBreak | None]:
    """Walk the chain in order; return (events checked, first break or None)."""
    prev = GENESIS
    checked = 0
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        cursor = connection.cursor(
            """
            select id, subject_id, request_id, consent_id, actor, action, from_status, to_status,
                   reason, details, occurred_at, redacted, personal_salt, personal_digest,
                   content_hash, prev_hash, chain_hash
            from audit_events order by id
            """,
            prefetch=500,
        )
        async for row in cursor:
            problem = _check_row(row, prev)
            if problem:
                return checked, ChainBreak(event_id=row["id"], problem=problem)
            prev = row["chain_hash"]
            checked += 1
    return checked, None


async def chain_hash_at(connection: Connection, event_id: int) -> bytes | None:
    value: bytes | None = await connection.fetchval(
        "select chain_hash from audit_events where id = $1", event_id
    )
    return value


async def chain_head(connection: Connection) -> tuple[int, bytes] | None:
    """The newest event and its chain hash: record it outside the database, since a chain
    alone cannot show that its newest events were cut off."""
    row = await connection.fetchrow(
        "select id, chain_hash from audit_events order by id desc limit 1"
    )
    return (row["id"], row["chain_hash"]) if row else None


def _check_row(row: asyncpg.Record, prev: bytes) -> str | None:
    if row["prev_hash"] != prev:
        return "prev_hash does not match the previous event (an event was removed or reordered)"
    if row["redacted"]:
        # Erasure blanks every personal field; anything left (or written) there is tampering.
        personal = (row["subject_id"], row["reason"], row["personal_salt"])
        if any(value is not None for value in personal) or json.loads(row["details"]):
            return "a redacted event still carries personal fields"
    else:
        if row["personal_salt"] is None:
            return "personal fields were blanked without being marked redacted"
        digest = personal_digest(
            row["personal_salt"], row["subject_id"], row["reason"], json.loads(row["details"])
        )
        if digest != row["personal_digest"]:
            return "subject_id, reason or details differ from what was recorded"
    content = content_hash(
        row["personal_digest"],
        request_id=row["request_id"],
        consent_id=row["consent_id"],
        actor=row["actor"],
        action=row["action"],
        from_status=row["from_status"],
        to_status=row["to_status"],
        occurred_at=row["occurred_at"],
    )
    if content != row["content_hash"]:
        return "actor, action, statuses, ids or time differ from what was recorded"
    if chain_hash(prev, content) != row["chain_hash"]:
        return "chain_hash does not match"
    return None


async def redact_events_of_records(
    connection: Connection,
    subject_ids: list[str],
    request_ids: list[uuid.UUID],
    consent_ids: list[uuid.UUID],
) -> int:
    """Blank the personal fields (subject id, reason, details, salt) of the events about
    these requests and consents, as erasure does: the chain still verifies. How many."""
    await connection.execute("set local consent.redaction = 'on'")
    redacted = await connection.fetchval(
        """
        with done as (
            update audit_events
            set subject_id = null, reason = null, details = '{}'::jsonb,
                personal_salt = null, redacted = true
            where subject_id = any($3::text[])
              and (request_id = any($1::uuid[]) or consent_id = any($2::uuid[]))
            returning 1
        ) select count(*) from done
        """,
        request_ids,
        consent_ids,
        subject_ids,
    )
    await connection.execute("set local consent.redaction = 'off'")
    return int(redacted)
