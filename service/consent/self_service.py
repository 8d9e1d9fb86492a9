"""Rights a guardian uses from their withdrawal link, each tracked as a data request.

What can be done at once is done in the same transaction as the request that asks for it, so
the request is recorded as done exactly when it is: a copy of the data (queued to the
guardian's own address), an erasure, an objection to a purpose. A complaint waits for a person
and stays open until staff answer it (``PATCH /v1/data-requests/{id}``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import msgspec

from service.consent import data_requests, endings, notifications, policy, subjects
from service.consent.endings import Withdrawal
from service.consent.errors import LinkProblem
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import consents as consents_repo
from service.db import data_requests as data_requests_repo
from service.db.audit_events import GUARDIAN_ACTOR, SYSTEM_ACTOR, record_event
from service.db.connection import Connection
from service.db.consents import Consent
from service.db.data_requests import DataRequest
from service.delivery import emails, outbox
from service.security.tokens import hash_link_token
from service.states import (
    DataRequestChannel,
    DataRequestKind,
    DataRequestStatus,
    LinkProblemReason,
)

COPY_FILENAME = "data-copy.json"
# What staff read on a request completed at once (the guardian is told on the page).
_OUTCOMES = {
    DataRequestKind.ACCESS: "A copy of the data was sent to the guardian's own address.",
    DataRequestKind.PORTABILITY: "A copy (JSON) was sent to the guardian's own address.",
    DataRequestKind.ERASURE: "The consent was withdrawn and the subject's data erased.",
    DataRequestKind.OBJECTION: "The purposes objected to were withdrawn at once.",
}


class Tracked(msgspec.Struct, frozen=True, kw_only=True):
    """A request as the guardian is told about it."""

    id: uuid.UUID
    kind: DataRequestKind
    status: DataRequestStatus
    received_at: datetime
    due_at: datetime


async def _locked_consent(connection: Connection, runtime: Runtime, token: str) -> Consent:
    """The live consent behind the link, its subject locked (call inside a transaction)."""
    token_hash = hash_link_token(token)
    now = runtime.clock.now()
    unlocked = await consents_repo.find_by_withdraw_token(connection, token_hash, now=now)
    if unlocked is None:
        raise LinkProblem(LinkProblemReason.UNKNOWN)
    await subjects.lock_subject_records(connection, unlocked.subject_id)
    found = await consents_repo.find_by_withdraw_token(
        connection, token_hash, for_update=True, now=now
    )
    return endings.live_consent(found, now)


async def _track(
    connection: Connection,
    runtime: Runtime,
    consent: Consent,
    kind: DataRequestKind,
    *,
    now: datetime,
    note: str | None = None,
) -> Tracked:
    """Record the request; done at once unless it waits for a person (a complaint).

    Append-only to the audit chain, so it comes after every lock the transaction takes."""
    request_id = uuid.uuid4()
    outcome = _OUTCOMES.get(kind)
    status = DataRequestStatus.OPEN if outcome is None else DataRequestStatus.DONE
    row = DataRequest(
        id=request_id,
        kind=kind,
        subject_id=consent.subject_id,
        channel=DataRequestChannel.GUARDIAN_PAGE,
        note_enc=(runtime.protector.encrypt(note.encode(), request_id.bytes) if note else None),
        received_at=now,
        due_at=data_requests.due_at(kind, now, runtime.settings),
        status=status,
        outcome=outcome,
        refusal_reason=None,
        handler=None if outcome is None else SYSTEM_ACTOR,
        created_at=now,
        updated_at=now,
        closed_at=None if outcome is None else now,
        erased_at=None,
    )
    await data_requests_repo.insert(connection, row)
    await record_event(
        connection,
        actor=GUARDIAN_ACTOR,
        action="data_request.opened",
        occurred_at=now,
        subject_id=consent.subject_id,
        consent_id=consent.id,
        to_status=DataRequestStatus.OPEN,
        details={
            "data_request_id": str(request_id),
            "kind": kind,
            "channel": DataRequestChannel.GUARDIAN_PAGE,
            "due_at": row.due_at.isoformat(),
        },
    )
    if outcome is not None:
        await record_event(
            connection,
            actor=SYSTEM_ACTOR,
            action="data_request.done",
            occurred_at=now,
            subject_id=consent.subject_id,
            consent_id=consent.id,
            from_status=DataRequestStatus.OPEN,
            to_status=DataRequestStatus.DONE,
            details={
                "data_request_id": str(request_id),
                "kind": kind,
                "changed": ["status", "outcome"],
                "on_time": True,
            },
        )
    return Tracked(id=request_id, kind=kind, status=status, received_at=now, due_at=row.due_at)


async def send_copy(
    connection: Connection, runtime: Runtime, token: str, kind: DataRequestKind
) -> Tracked:
    """A copy of the guardian's own data with the Art. 15(1) information, emailed as a JSON
    file to the address the consent was verified at and to no other (Art. 15(3), 20)."""
    assert kind in (DataRequestKind.ACCESS, DataRequestKind.PORTABILITY)
    now = runtime.clock.now()
    async with connection.transaction():
        consent = await _locked_consent(connection, runtime, token)
        request = await requests_repo.get_request(connection, consent.request_id)
        address = notifications.guardian_email(runtime, request) if request else None
        if request is None or address is None:
            raise LinkProblem(LinkProblemReason.NOT_LIVE)
        copy = await subjects.export(
            connection,
            runtime,
            consent.subject_id,
            reader=GUARDIAN_ACTOR,
            guardian_of=consent.id,
            locale=request.locale,
        )
        email = emails.render_copy_email(
            locale=request.locale,
            operator_name=runtime.settings.operator_name,
            requested_at=now,
            timezone=policy.display_timezone(consent.jurisdiction),
            filename=COPY_FILENAME,
            copy_json=msgspec.json.format(msgspec.json.encode(copy), indent=2).decode(),
        )
        await outbox.enqueue_email(
            connection,
            runtime.protector,
            topic="data_copy",
            subject_id=consent.subject_id,
            related_id=consent.id,
            to=address,
            locale=request.locale,
            email=email,
            now=now,
        )
        return await _track(connection, runtime, consent, kind, now=now)


async def erase(connection: Connection, runtime: Runtime, token: str) -> Tracked:
    """Withdraw the consent and erase the subject, as the withdrawal page's erasure does; the
    tracked request is recorded first, so the erasure leaves it anonymous and done."""
    now = runtime.clock.now()
    async with connection.transaction():
        consent = await _locked_consent(connection, runtime, token)
        tracked = await _track(connection, runtime, consent, DataRequestKind.ERASURE, now=now)
        await endings.withdraw_purposes(connection, runtime, token, (), erase=True, everything=True)
        await subjects.erase(connection, runtime, consent.subject_id, actor=GUARDIAN_ACTOR)
    return tracked


async def object_to(
    connection: Connection, runtime: Runtime, token: str, purposes: Sequence[str]
) -> tuple[Withdrawal, Tracked]:
    """An objection to purposes (Art. 21): their use stops at once, as a withdrawal of them
    (``endings.withdraw_purposes`` raises ``InvalidWithdrawal`` for a choice it refuses)."""
    now = runtime.clock.now()
    async with connection.transaction():
        await _locked_consent(connection, runtime, token)
        withdrawal = await endings.withdraw_purposes(connection, runtime, token, purposes)
        tracked = await _track(
            connection, runtime, withdrawal.consent, DataRequestKind.OBJECTION, now=now
        )
    return withdrawal, tracked


async def complain(connection: Connection, runtime: Runtime, token: str, text: str) -> Tracked:
    """A complaint about a decision: open, due in ``CONSENT_COMPLAINT_DUE_WORKING_DAYS``."""
    now = runtime.clock.now()
    async with connection.transaction():
        consent = await _locked_consent(connection, runtime, token)
        return await _track(
            connection, runtime, consent, DataRequestKind.COMPLAINT, now=now, note=text
        )
