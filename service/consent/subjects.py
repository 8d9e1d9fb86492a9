"""Data-subject rights: what staff may see of a subject, its export, and its erasure."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import msgspec

from service.consent import access, data_requests, lifecycle, notifications, restrictions
from service.consent.erasure_reasons import ErasureReason
from service.consent.errors import InvalidInput, NotFound
from service.consent.runtime import Runtime
from service.db import data_requests as data_requests_repo
from service.db import locks, notice_versions
from service.db import subjects as subjects_repo
from service.db.audit_events import AuditEvent, record_event, subject_events
from service.db.connection import Connection
from service.i18n import DEFAULT_LOCALE
from service.security.email_address import InvalidEmailAddress, parse_email_address
from service.security.personal_data import mask_email
from service.states import ConsentStatus, OutboxKind, OutboxStatus, RequestStatus


class RequestView(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    status: RequestStatus
    country: str
    age_of_consent: int
    basis: str
    consent_required_until: date
    guardian_email: str | None
    guardian: str
    purposes: list[str]
    locale: str
    policy_version: str
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    purged_at: datetime | None
    joint_consent: bool
    child_agreed: bool | None


class ConsentView(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    request_id: uuid.UUID
    status: ConsentStatus
    purposes: list[str]
    jurisdiction: str
    method: str
    policy_version: str
    guardian: str
    granted_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    purpose_methods: dict[str, str]


class SubjectOverview(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    subject_id: str
    requests: list[RequestView]
    consents: list[ConsentView]
    # only while processing is restricted (GDPR Art. 18): the check allows nothing meanwhile
    restriction: restrictions.RestrictionRecord | None = None


class MessageRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    kind: OutboxKind
    topic: str
    status: OutboxStatus
    attempts: int
    created_at: datetime
    sent_at: datetime | None


class NoticeRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The text of a notice the guardian was shown, word for word (``policy_version``)."""

    version: str
    locale: str
    text: str
    first_used_at: datetime


class SubjectExport(msgspec.Struct, frozen=True, kw_only=True):
    """A copy of the data (GDPR Art. 15(3), 20) and the information of Art. 15(1).

    ``guardian``: the guardian the copy is for (their pseudonymous reference), or None for
    the operator's complete record of the subject, every guardian's address included.
    """

    subject_id: str
    exported_at: datetime
    guardian: str | None
    information: access.AccessInformation
    requests: list[dict[str, Any]]
    consents: list[dict[str, Any]]
    events: list[AuditEvent]
    messages: list[MessageRecord]
    data_requests: list[data_requests.DataRequestView]
    notices: list[NoticeRecord]
    restriction: restrictions.RestrictionRecord | None = None


class ErasureReceipt(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    erased_at: datetime
    requests: int
    consents: int
    messages: int
    events_redacted: int
    data_requests: int


class SubjectMatch(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    requests: int
    latest_request_at: datetime


class SubjectSearch(msgspec.Struct, frozen=True, kw_only=True):
    guardian_email: str
    subjects: list[SubjectMatch]


async def find_by_guardian(
    connection: Connection, runtime: Runtime, guardian_email: str, *, reader: str
) -> SubjectSearch:
    """Support's lookup when a parent calls: which children did this address answer for?

    Found by the mailbox (``service.security.email_address``): ``parent@example.com`` also finds
    requests sent to ``Parent+school@example.com``. Nothing was ever stored under a text that
    is not a valid address, so such a text finds nothing.
    """
    try:
        address = parse_email_address(guardian_email)
    except InvalidEmailAddress:
        found = []
    else:
        found = await subjects_repo.subjects_of_guardian(
            connection, runtime.protector.address_hashes(address)
        )
    # one event in each found subject's trail; a search that found nothing is recorded too
    now = runtime.clock.now()
    read: list[str | None] = [s.subject_id for s in found]
    for subject_id in read or [None]:
        await _record_read(
            connection,
            reader=reader,
            action="subject.looked_up",
            subject_id=subject_id,
            now=now,
            details={"by": "guardian_email", "subjects_found": len(found)},
        )
    return SubjectSearch(
        guardian_email=mask_email(guardian_email),
        subjects=[
            SubjectMatch(
                subject_id=s.subject_id, requests=s.requests, latest_request_at=s.latest_request_at
            )
            for s in found
        ],
    )


async def _requests(
    connection: Connection, runtime: Runtime, subject_id: str
) -> list[dict[str, Any]]:
    """The subject's requests as the API names them, the guardian email decrypted, each
    status as it is now."""
    now = runtime.clock.now()
    requests = []
    pseudonym = runtime.protector.subject_pseudonym(subject_id)
    for row in await subjects_repo.requests_of(connection, subject_id, pseudonym):
        request = msgspec.structs.asdict(row)
        request["status"] = lifecycle.request_status_at(row.status, row.expires_at, now)
        blob = request.pop("guardian_email_enc")
        request["guardian_email"] = (
            runtime.protector.decrypt(blob, row.id.bytes).decode() if blob else None
        )
        hint = request.pop("child_hint_enc")
        request["child_hint"] = (
            runtime.protector.decrypt(hint, notifications.child_hint_context(row.id)).decode()
            if hint
            else None
        )
        requests.append(request)
    return requests


async def _consents(
    connection: Connection, runtime: Runtime, subject_id: str
) -> list[dict[str, Any]]:
    now = runtime.clock.now()
    consents = []
    pseudonym = runtime.protector.subject_pseudonym(subject_id)
    for row in await subjects_repo.consents_of(connection, subject_id, pseudonym):
        consent = msgspec.structs.asdict(row)
        consent["status"] = lifecycle.consent_status_at(row.status, row.expires_at, now)
        consents.append(consent)
    return consents


async def overview(
    connection: Connection,
    runtime: Runtime,
    subject_id: str,
    *,
    reader: str,
    record_read: bool = True,
) -> SubjectOverview:
    """What support staff see: everything needed to help, the guardian email masked.

    ``record_read=False``: the caller records the read itself (the console's own page-view
    event names the staff member), so one view leaves one event."""
    requests = []
    for request in await _requests(connection, runtime, subject_id):
        email = request["guardian_email"]
        request["guardian_email"] = mask_email(email) if email else None
        requests.append(msgspec.convert(request, RequestView))  # drops the birth date
    consents = [
        msgspec.convert(c, ConsentView) for c in await _consents(connection, runtime, subject_id)
    ]
    if record_read:
        await _record_read(
            connection,
            reader=reader,
            action="subject.viewed",
            subject_id=subject_id if requests or consents else None,
            now=runtime.clock.now(),
        )
    return SubjectOverview(
        subject_id=subject_id,
        requests=requests,
        consents=consents,
        restriction=await restrictions.current(connection, subject_id),
    )


async def export(
    connection: Connection,
    runtime: Runtime,
    subject_id: str,
    *,
    reader: str,
    guardian_of: uuid.UUID | None = None,
    locale: str = DEFAULT_LOCALE,
) -> SubjectExport:
    """Everything stored about the child and the guardian, decrypted (GDPR Art. 15 and 20).

    ``guardian_of`` (a consent id of the subject) narrows the copy to what that consent's
    guardian may receive (Art. 15(4)): the requests sent to their address and what followed
    from them, never another guardian's address, emails or staff notes. Without it, the
    operator's complete record. Either way the export is an audit event naming ``reader``.
    """
    requests = await _requests(connection, runtime, subject_id)
    consents = await _consents(connection, runtime, subject_id)
    messages = await subjects_repo.messages_of(connection, subject_id)
    events = await subject_events(connection, subject_id)
    rights_requests = await data_requests.of_subject(connection, runtime, subject_id)
    stored = bool(requests or consents or events or rights_requests)
    guardian = None
    if guardian_of is not None:
        guardian = next((c["guardian"] for c in consents if c["id"] == guardian_of), None)
        if guardian is None:
            raise NotFound("This subject has no consent with this id.")
        requests = [r for r in requests if r["guardian"] == guardian]
        consents = [c for c in consents if c["guardian"] == guardian]
        own = {r["id"] for r in requests} | {c["id"] for c in consents}
        messages = [m for m in messages if m.related_id in own]
        events = [e for e in events if e.request_id in own or e.consent_id in own]
        # staff notes and requests of other guardians; their own show in ``events``
        rights_requests = []
    versions = sorted({str(r["policy_version"]) for r in [*requests, *consents]})
    shown = await notice_versions.find_many(connection, versions)
    now = runtime.clock.now()
    await _record_read(
        connection,
        reader=reader,
        action="subject.exported",
        subject_id=subject_id if stored else None,
        now=now,
        details={"guardian_scope": guardian_of is not None},
        consent_id=guardian_of,
    )
    return SubjectExport(
        subject_id=subject_id,
        exported_at=now,
        guardian=guardian,
        information=access.information(runtime, locale),
        requests=[msgspec.to_builtins(r) for r in requests],
        consents=[msgspec.to_builtins(c) for c in consents],
        events=events,
        messages=[
            MessageRecord(
                id=m.id,
                kind=m.kind,
                topic=m.topic,
                status=m.status,
                attempts=m.attempts,
                created_at=m.created_at,
                sent_at=m.sent_at,
            )
            for m in messages
        ],
        data_requests=rights_requests,
        notices=[
            NoticeRecord(
                version=n.version, locale=n.locale, text=n.text, first_used_at=n.first_used_at
            )
            for n in shown
        ],
        restriction=await restrictions.current(connection, subject_id),
    )


async def _record_read(
    connection: Connection,
    *,
    reader: str,
    action: str,
    subject_id: str | None,
    now: datetime,
    details: dict[str, Any] | None = None,
    consent_id: uuid.UUID | None = None,
) -> None:
    """Who read a subject's data (GDPR Art. 5(2), 32): an audit event, like every change.

    ``subject_id`` is None when nothing is stored about the subject (never seen, or erased):
    nothing was disclosed, and the read must not bring an erased subject's id back."""
    async with connection.transaction():
        await record_event(
            connection,
            actor=reader,
            action=action,
            occurred_at=now,
            subject_id=subject_id,
            consent_id=consent_id,
            details=details,
        )


async def events(
    connection: Connection, runtime: Runtime, subject_id: str, *, reader: str
) -> list[AuditEvent]:
    """The subject's audit trail as it was before this reading of it, which is recorded."""
    trail = await subject_events(connection, subject_id)
    await _record_read(
        connection,
        reader=reader,
        action="subject.events_read",
        subject_id=subject_id if trail else None,
        now=runtime.clock.now(),
    )
    return trail


async def lock_subject_records(connection: Connection, subject_id: str) -> list[uuid.UUID]:
    """Lock a subject and all its rows (requests before consents, the order grants use).

    Whatever was in flight for the subject finishes first and everything it wrote is seen.
    Call it inside a transaction, before anything that appends to the audit chain.
    """
    await locks.lock_subject(connection, subject_id)
    return await subjects_repo.lock_rows(connection, subject_id)


async def erase(
    connection: Connection,
    runtime: Runtime,
    subject_id: str,
    *,
    actor: str,
    reason: ErasureReason | None = None,
    data_request_id: uuid.UUID | None = None,
) -> ErasureReceipt:
    """Erase a subject everywhere (GDPR Art. 17(1)(f), COPPA 312.6), keeping a tombstone.

    Request and consent rows, a restriction and undelivered emails are deleted; rights
    requests keep only their anonymous facts (kind, channel, dates, status); audit events lose
    their personal fields (the chain still verifies, see ``service.db.audit_events``); one
    anonymous ``subject.erased`` event records that it happened. Pending webhooks stay so the
    main app still learns what changed, and a ``subject.erased`` webhook tells it to erase its
    copy. The tombstone keeps only non-personal facts: ``reason``, a preset category, and
    ``data_request_id``, the subject's tracked rights request the erasure answers (any other
    id is refused with ``InvalidInput`` and nothing is erased).
    """
    now = runtime.clock.now()
    async with connection.transaction():
        request_ids = await lock_subject_records(connection, subject_id)
        if data_request_id is not None:
            tracked = await data_requests_repo.get(connection, data_request_id, for_update=True)
            if tracked is None or tracked.subject_id != subject_id:
                raise InvalidInput("the rights request is not this subject's")
        erased = await subjects_repo.erase_rows(
            connection, subject_id, now, runtime.protector.subject_pseudonym(subject_id)
        )
        await notifications.subject_erased_webhook(connection, runtime, subject_id, now)
        receipt = ErasureReceipt(
            subject_id=subject_id,
            erased_at=now,
            requests=len(request_ids),
            consents=erased.consents,
            messages=erased.messages,
            events_redacted=erased.events_redacted,
            data_requests=erased.data_requests,
        )
        await record_event(
            connection,
            actor=actor,
            action="subject.erased",
            occurred_at=now,
            reason=reason.value if reason is not None else None,
            details={
                **({"data_request_id": str(data_request_id)} if data_request_id else {}),
                "requests": receipt.requests,
                "consents": receipt.consents,
                "messages": receipt.messages,
                "events_redacted": receipt.events_redacted,
                "data_requests": receipt.data_requests,
            },
        )
    return receipt
