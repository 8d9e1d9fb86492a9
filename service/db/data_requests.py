"""SQL of the ``data_requests`` table: rights requests tracked against their due date."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from service.db.connection import Connection
from service.states import DataRequestChannel, DataRequestKind, DataRequestStatus

_COLUMNS = """
    id, kind, subject_id, channel, note_enc, received_at, due_at, status, outcome,
    refusal_reason, handler, created_at, updated_at, closed_at, erased_at
"""
# Not yet answered and past its due date; the same expression orders and filters.
_OVERDUE = "(status in ('open', 'in_progress') and due_at < $1)"


class DataRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A row; the note still encrypted."""

    id: uuid.UUID
    kind: DataRequestKind
    subject_id: str | None
    channel: DataRequestChannel
    note_enc: bytes | None
    received_at: datetime
    due_at: datetime
    status: DataRequestStatus
    outcome: str | None
    refusal_reason: str | None
    handler: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    erased_at: datetime | None


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    unanswered: int
    overdue: int


async def insert(connection: Connection, request: DataRequest) -> None:
    await connection.execute(
        f"insert into data_requests ({_COLUMNS}) "
        "values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        *msgspec.structs.astuple(request),
    )


async def get(
    connection: Connection, request_id: uuid.UUID, *, for_update: bool = False
) -> DataRequest | None:
    lock = " for update" if for_update else ""
    row = await connection.fetchrow(
        f"select {_COLUMNS} from data_requests where id = $1{lock}",
        request_id,
    )
    return msgspec.convert(dict(row), DataRequest) if row else None


async def update(
    connection: Connection,
    request_id: uuid.UUID,
    *,
    status: DataRequestStatus,
    outcome: str | None,
    refusal_reason: str | None,
    note_enc: bytes | None,
    handler: str,
    updated_at: datetime,
    closed_at: datetime | None,
) -> DataRequest:
    row = await connection.fetchrow(
        f"""
        update data_requests
        set status = $2, outcome = $3, refusal_reason = $4, note_enc = $5, handler = $6,
            updated_at = $7, closed_at = $8
        where id = $1 returning {_COLUMNS}
        """,
        request_id,
        status,
        outcome,
        refusal_reason,
        note_enc,
        handler,
        updated_at,
        closed_at,
    )
    assert row is not None, "the caller holds the row's lock"
    return msgspec.convert(dict(row), DataRequest)


async def page(
    connection: Connection,
    *,
    now: datetime,
    status: DataRequestStatus | None,
    kind: DataRequestKind | None,
    overdue: bool | None,
    limit: int,
    offset: int,
) -> list[DataRequest]:
    """Overdue requests first, then by due date; ``limit + 1`` rows say whether more follow."""
    rows = await connection.fetch(
        f"""
        select {_COLUMNS} from data_requests
        where ($2::text is null or status = $2)
          and ($3::text is null or kind = $3)
          and ($4::boolean is null or {_OVERDUE} = $4)
        order by {_OVERDUE} desc, due_at, id
        limit $5 offset $6
        """,
        now,
        status,
        kind,
        overdue,
        limit + 1,
        offset,
    )
    return [msgspec.convert(dict(row), DataRequest) for row in rows]


async def of_subject(connection: Connection, subject_id: str) -> list[DataRequest]:
    rows = await connection.fetch(
        f"select {_COLUMNS} from data_requests where subject_id = $1 order by received_at, id",
        subject_id,
    )
    return [msgspec.convert(dict(row), DataRequest) for row in rows]


async def counts(connection: Connection, now: datetime) -> Counts:
    row = await connection.fetchrow(
        """
        select count(*) as unanswered, count(*) filter (where due_at < $1) as overdue
        from data_requests where status in ('open', 'in_progress')
        """,
        now,
    )
    assert row is not None
    return Counts(unanswered=int(row["unanswered"]), overdue=int(row["overdue"]))


async def erase_for_subject(connection: Connection, subject_id: str, now: datetime) -> int:
    """Blank the personal fields of a subject's requests, keeping the anonymous rest."""
    erased = await connection.fetchval(
        """
        with done as (
            update data_requests
            set subject_id = null, note_enc = null, outcome = null, refusal_reason = null,
                erased_at = $2, updated_at = $2
            where subject_id = $1 returning 1
        ) select count(*) from done
        """,
        subject_id,
        now,
    )
    return int(erased)


async def queue(
    connection: Connection,
    *,
    now: datetime,
    status: DataRequestStatus | None,
    kind: DataRequestKind | None,
    overdue: bool | None,
    limit: int,
) -> list[DataRequest]:
    """The console's work queue: overdue first, then the other unanswered ones by due date,
    then the closed ones, latest closed first; ``limit + 1`` rows say whether more follow."""
    rows = await connection.fetch(
        f"""
        select {_COLUMNS} from data_requests
        where ($2::text is null or status = $2)
          and ($3::text is null or kind = $3)
          and ($4::boolean is null or {_OVERDUE} = $4)
        order by {_OVERDUE} desc, (status in ('open', 'in_progress')) desc,
                 case when status in ('open', 'in_progress') then due_at end,
                 closed_at desc nulls last, id
        limit $5
        """,
        now,
        status,
        kind,
        overdue,
        limit + 1,
    )
    return [msgspec.convert(dict(row), DataRequest) for row in rows]
