"""What the database holds: row counts (to show a refused request wrote nothing), a request's
row, an outbox email's row, and every place in the public schema that still holds a value."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

import asyncpg

PERSONAL_TABLES = ("consent_requests", "consents", "outbox", "audit_events", "idempotency_keys")
# What a POST /v1/consent-requests may write (a consent comes only from a guardian's decision).
REQUEST_TABLES = ("consent_requests", "outbox", "audit_events", "idempotency_keys")
NOTHING_STORED = dict.fromkeys(REQUEST_TABLES, 0)


async def row_counts(
    db: asyncpg.Connection, tables: Sequence[str] = PERSONAL_TABLES
) -> dict[str, int]:
    """How many rows each of ``tables`` holds."""
    return {table: await db.fetchval(f"select count(*) from {table}") for table in tables}


async def request_row(db: asyncpg.Connection, request_id: uuid.UUID) -> asyncpg.Record:
    row = await db.fetchrow("select * from consent_requests where id = $1", request_id)
    assert row is not None
    return row


async def email_row(db: asyncpg.Connection, related_id: uuid.UUID) -> asyncpg.Record:
    """The outbox email about ``related_id`` (a consent request)."""
    row = await db.fetchrow(
        "select id, status, attempts, last_error, payload_enc, created_at from outbox "
        "where related_id = $1 and kind = 'email'",
        related_id,
    )
    assert row is not None
    return row


# ---- personal data anywhere in the database --------------------------------------------------

TEXTUAL = {"text", "character varying", "character", "jsonb", "json"}


async def personal_traces(
    db: asyncpg.Connection, *, texts: Sequence[str], dates: Sequence[date] = ()
) -> list[str]:
    """Every ``table.column`` of the public schema holding one of ``texts`` (case-insensitive,
    also as bytes in bytea) or one of ``dates`` (as a date or its ISO string)."""
    needles = [t.lower() for t in texts] + [d.isoformat() for d in dates]
    columns = await db.fetch(
        """
        select c.table_name, c.column_name, c.data_type, c.udt_name
        from information_schema.columns c
        join information_schema.tables t
          on t.table_schema = c.table_schema and t.table_name = c.table_name
        where c.table_schema = 'public' and t.table_type = 'BASE TABLE'
        order by c.table_name, c.ordinal_position
        """
    )
    found = []
    for column in columns:
        table, name, data_type = column["table_name"], column["column_name"], column["data_type"]
        array_of_text = data_type == "ARRAY" and column["udt_name"] in {"_text", "_varchar"}
        if data_type in TEXTUAL or array_of_text:
            values = await db.fetch(
                f'select "{name}"::text as v from "{table}" where "{name}" is not null'
            )
            if any(n in row["v"].lower() for row in values for n in needles):
                found.append(f"{table}.{name}")
        elif data_type == "bytea":
            values = await db.fetch(
                f'select "{name}" as v from "{table}" where "{name}" is not null'
            )
            raw_needles = [n.encode() for n in needles]
            if any(n in bytes(row["v"]).lower() for row in values for n in raw_needles):
                found.append(f"{table}.{name}")
        elif data_type == "date" and dates:
            hit = await db.fetchval(
                f'select count(*) from "{table}" where "{name}" = any($1::date[])', list(dates)
            )
            if hit:
                found.append(f"{table}.{name}")
    return found
