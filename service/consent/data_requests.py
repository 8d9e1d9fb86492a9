"""Rights requests tracked against the operator's promised answer times.

A guardian asks for access, portability, rectification, erasure, restriction or objection, or
complains about an access decision; staff record it, work on it and close it as done or
refused. Each request is due a configured time after it was received; one not answered by then
is overdue. Every change is an audit event naming the staff member.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import msgspec

from service.consent.errors import Conflict, InvalidInput, NotFound
from service.consent.runtime import Runtime
from service.db import data_requests as data_requests_repo
from service.db import locks
from service.db.audit_events import record_event
from service.db.connection import Connection
from service.db.data_requests import DataRequest
from service.settings import Settings
from service.states import DataRequestChannel, DataRequestKind, DataRequestStatus

# A request received longer ago than this is a typing error, not a letter found late: every
# legal deadline for an answer (GDPR Art. 12(3): one month, extendable by two) has passed.
RECEIVED_AT_MAX_AGE = timedelta(days=90)
FINAL_STATUSES = frozenset({DataRequestStatus.DONE, DataRequestStatus.REFUSED})
UNANSWERED_STATUSES = frozenset({DataRequestStatus.OPEN, DataRequestStatus.IN_PROGRESS})
# Where a request may go from each status that is not final (staying is an edit of its texts).
_NEXT_STATUSES = {
    DataRequestStatus.OPEN: frozenset(DataRequestStatus),
    DataRequestStatus.IN_PROGRESS: frozenset(DataRequestStatus) - {DataRequestStatus.OPEN},
}
_SATURDAY = 5


class DataRequestView(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    subject_id: str | None
    kind: DataRequestKind
    channel: DataRequestChannel
    note: str | None
    status: DataRequestStatus
    received_at: datetime
    due_at: datetime
    overdue: bool
    answered_on_time: bool | None
    outcome: str | None
    refusal_reason: str | None
    handler: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    erased: bool


class DataRequestPage(msgspec.Struct, frozen=True, kw_only=True):
    data_requests: list[DataRequestView]
    limit: int
    offset: int
    next_offset: int | None


def due_at(kind: DataRequestKind, received_at: datetime, settings: Settings) -> datetime:
    """When the answer is due: ``CONSENT_DATA_REQUEST_DUE_DAYS`` calendar days after receipt,
    or for a complaint ``CONSENT_COMPLAINT_DUE_WORKING_DAYS`` working days (Monday to Friday,
    weekdays in UTC).

    The period runs from the moment of receipt and ends at the same time of day, inside the
    promised period rather than on its last midnight. Public holidays count as working days:
    the deadline comes earlier, never later, than one that skips them.
    """
    if kind != DataRequestKind.COMPLAINT:
        return received_at + timedelta(days=settings.data_request_due_days)
    moment, counted = received_at, 0
    while counted < settings.complaint_due_working_days:
        moment += timedelta(days=1)
        if moment.weekday() < _SATURDAY:
            counted += 1
    return moment


def _view(runtime: Runtime, request: DataRequest, now: datetime) -> DataRequestView:
    note = (
        runtime.protector.decrypt(request.note_enc, request.id.bytes).decode()
        if request.note_enc
        else None
    )
    return DataRequestView(
        id=request.id,
        subject_id=request.subject_id,
        kind=request.kind,
        channel=request.channel,
        note=note,
        status=request.status,
        received_at=request.received_at,
        due_at=request.due_at,
        overdue=request.status in UNANSWERED_STATUSES and request.due_at < now,
        answered_on_time=request.closed_at <= request.due_at if request.closed_at else None,
        outcome=request.outcome,
        refusal_reason=request.refusal_reason,
        handler=request.handler,
        created_at=request.created_at,
        updated_at=request.updated_at,
        closed_at=request.closed_at,
        erased=request.erased_at is not None,
    )


def _encrypted_note(runtime: Runtime, request_id: uuid.UUID, note: str | None) -> bytes | None:
    # bound to the request's id: a ciphertext copied to another row does not decrypt
    return runtime.protector.encrypt(note.encode(), request_id.bytes) if note else None


async def open_request(
    connection: Connection,
    runtime: Runtime,
    *,
    subject_id: str,
    kind: DataRequestKind,
    channel: DataRequestChannel,
    note: str | None,
    received_at: datetime | None,
    staff: str,
) -> DataRequestView:
    now = runtime.clock.now()
    received = received_at or now
    if received > now:
        raise InvalidInput("received_at lies in the future.")
    if received < now - RECEIVED_AT_MAX_AGE:
        raise InvalidInput(
            f"received_at lies more than {RECEIVED_AT_MAX_AGE.days} days in the past; "
            "check the date."
        )
    request_id = uuid.uuid4()
    request = DataRequest(
        id=request_id,
        kind=kind,
        subject_id=subject_id,
        channel=channel,
        note_enc=_encrypted_note(runtime, request_id, note),
        received_at=received,
        due_at=due_at(kind, received, runtime.settings),
        status=DataRequestStatus.OPEN,
        outcome=None,
        refusal_reason=None,
        handler=staff,
        created_at=now,
        updated_at=now,
        closed_at=None,
        erased_at=None,
    )
    async with connection.transaction():
        # after an erasure in flight for the subject, never before it
        await locks.lock_subject(connection, subject_id)
        await data_requests_repo.insert(connection, request)
        await record_event(
            connection,
            actor=f"staff:{staff}",
            action="data_request.opened",
            occurred_at=now,
            subject_id=subject_id,
            to_status=DataRequestStatus.OPEN,
            details={
                "data_request_id": str(request_id),
                "kind": kind,
                "channel": channel,
                "due_at": request.due_at.isoformat(),
            },
        )
    return _view(runtime, request, now)


async def get_request(
    connection: Connection, runtime: Runtime, request_id: uuid.UUID
) -> DataRequestView:
    request = await data_requests_repo.get(connection, request_id)
    if request is None:
        raise NotFound("No data request with this id.")
    return _view(runtime, request, runtime.clock.now())


async def list_requests(
    connection: Connection,
    runtime: Runtime,
    *,
    status: DataRequestStatus | None,
    kind: DataRequestKind | None,
    overdue: bool | None,
    limit: int,
    offset: int,
) -> DataRequestPage:
    """One page of requests, overdue first, then by due date."""
    now = runtime.clock.now()
    rows = await data_requests_repo.page(
        connection,
        now=now,
        status=status,
        kind=kind,
        overdue=overdue,
        limit=limit,
        offset=offset,
    )
    return DataRequestPage(
        data_requests=[_view(runtime, row, now) for row in rows[:limit]],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if len(rows) > limit else None,
    )


async def update_request(
    connection: Connection,
    runtime: Runtime,
    request_id: uuid.UUID,
    *,
    status: DataRequestStatus | None,
    outcome: str | None,
    refusal_reason: str | None,
    note: str | None,
    staff: str,
) -> DataRequestView:
    """Move a request on (or edit its texts); done and refused are final."""
    if status is None and outcome is None and refusal_reason is None and note is None:
        raise InvalidInput("Nothing to change: send status, outcome, refusal_reason or note.")
    if status == DataRequestStatus.REFUSED and refusal_reason is None:
        raise InvalidInput("A refusal needs a refusal_reason (it is told to the guardian).")
    now = runtime.clock.now()
    async with connection.transaction():
        unlocked = await data_requests_repo.get(connection, request_id)
        if unlocked is None:
            raise NotFound("No data request with this id.")
        if unlocked.subject_id is not None:
            await locks.lock_subject(connection, unlocked.subject_id)
        current = await data_requests_repo.get(connection, request_id, for_update=True)
        if current is None:
            raise NotFound("No data request with this id.")
        new_status = status or current.status
        if current.status in FINAL_STATUSES:
            raise Conflict(
                f"This data request is {current.status} already; a closed request is not changed.",
                current_status=current.status,
            )
        if new_status not in _NEXT_STATUSES[current.status]:
            raise Conflict(
                f"A data request that is {current.status} cannot go back to {new_status}.",
                current_status=current.status,
            )
        if refusal_reason is not None and new_status != DataRequestStatus.REFUSED:
            raise InvalidInput('refusal_reason is given only with status "refused".')
        changed = [
            name
            for name, value in (
                ("status", status),
                ("outcome", outcome),
                ("refusal_reason", refusal_reason),
                ("note", note),
            )
            if value is not None
        ]
        updated = await data_requests_repo.update(
            connection,
            request_id,
            status=new_status,
            outcome=outcome if outcome is not None else current.outcome,
            refusal_reason=refusal_reason,
            note_enc=(
                _encrypted_note(runtime, request_id, note) if note is not None else current.note_enc
            ),
            handler=staff,
            updated_at=now,
            closed_at=now if new_status in FINAL_STATUSES else None,
        )
        await record_event(
            connection,
            actor=f"staff:{staff}",
            action=(
                f"data_request.{new_status}"
                if new_status != current.status
                else "data_request.updated"
            ),
            occurred_at=now,
            subject_id=current.subject_id,
            from_status=current.status,
            to_status=new_status,
            reason=refusal_reason,
            details={
                "data_request_id": str(request_id),
                "kind": current.kind,
                "changed": changed,
                "on_time": now <= current.due_at,
            },
        )
    return _view(runtime, updated, now)


async def of_subject(
    connection: Connection, runtime: Runtime, subject_id: str
) -> list[DataRequestView]:
    """The subject's requests with their notes decrypted (for the export)."""
    now = runtime.clock.now()
    return [
        _view(runtime, row, now)
        for row in await data_requests_repo.of_subject(connection, subject_id)
    ]


async def counts(connection: Connection, runtime: Runtime) -> data_requests_repo.Counts:
    return await data_requests_repo.counts(connection, runtime.clock.now())


async def queue(
    connection: Connection,
    runtime: Runtime,
    *,
    status: DataRequestStatus | None,
    kind: DataRequestKind | None,
    overdue: bool | None,
    limit: int,
) -> DataRequestPage:
    """The work queue: overdue requests at the top, then the unanswered ones by due date,
    then the closed ones."""
    now = runtime.clock.now()
    rows = await data_requests_repo.queue(
        connection, now=now, status=status, kind=kind, overdue=overdue, limit=limit
    )
    return DataRequestPage(
        data_requests=[_view(runtime, row, now) for row in rows[:limit]],
        limit=limit,
        offset=0,
        next_offset=limit if len(rows) > limit else None,
    )
