"""Data-subject rights: what staff may see of a subject, its export, and its erasure."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import msgspec

from service.consent.runtime import Runtime
from service.consent.workflows import advisory_lock
from service.db.audit_events import AuditEvent, record_event, subject_events
from service.db.connection import Connection
from service.delivery import outbox
from service.security.personal_data import email_identity, mask_email


class RequestView(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    status: str
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


class ConsentView(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    request_id: uuid.UUID
    status: str
    purposes: list[str]
    jurisdiction: str
    method: str
    policy_version: str
    guardian: str
    granted_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    end_reason: str | None


class SubjectOverview(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    requests: list[RequestView]
    consents: list[ConsentView]


class MessageRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    kind: str
    topic: str
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None


class SubjectExport(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    exported_at: datetime
    requests: list[dict[str, Any]]
    consents: list[dict[str, Any]]
    events: list[AuditEvent]
    messages: list[MessageRecord]


class ErasureReceipt(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    erased_at: datetime
    requests: int
    consents: int
    messages: int
    events_redacted: int


class SubjectMatch(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    requests: int
    latest_request_at: datetime


class SubjectSearch(msgspec.Struct, frozen=True, kw_only=True):
    guardian_email: str
    subjects: list[SubjectMatch]


async def find_by_guardian(
    connection: Connection, runtime: Runtime, guardian_email: str
) -> SubjectSearch:
    """Support's lookup when a parent calls: which children did this address answer for?"""
    rows = await connection.fetch(
        """
        select subject_id, count(*) as requests, max(created_at) as latest_request_at
        from consent_requests where guardian_email_hash = $1
        group by subject_id order by max(created_at) desc
        """,
        runtime.protector.lookup_hash(email_identity(guardian_email)),
    )
    return SubjectSearch(
        guardian_email=mask_email(guardian_email),
        subjects=[msgspec.convert(dict(row), SubjectMatch) for row in rows],
    )


async def _requests(
    connection: Connection, runtime: Runtime, subject_id: str
) -> list[dict[str, Any]]:
    """The subject's requests as the API names them, the guardian email decrypted."""
    rows = await connection.fetch(
        """
        select id, status, country, age_of_consent, basis, birth_date, consent_required_until,
               guardian_email_enc, guardian_ref as guardian, purposes, locale, policy_version,
               created_at, expires_at, decided_at, purged_at
        from consent_requests where subject_id = $1 order by created_at
        """,
        subject_id,
    )
    requests = []
    for row in rows:
        request = dict(row)
        blob = request.pop("guardian_email_enc")
        request["guardian_email"] = (
            runtime.protector.decrypt(blob, row["id"].bytes).decode() if blob else None
        )
        requests.append(request)
    return requests


async def _consents(connection: Connection, subject_id: str) -> list[dict[str, Any]]:
    rows = await connection.fetch(
        """
        select id, request_id, status, purposes, jurisdiction, method, policy_version,
               guardian_ref as guardian, granted_at, expires_at, ended_at, end_reason, token
        from consents where subject_id = $1 order by granted_at
        """,
        subject_id,
    )
    return [dict(row) for row in rows]


async def overview(connection: Connection, runtime: Runtime, subject_id: str) -> SubjectOverview:
    """What support staff see: everything needed to help, the guardian email masked."""
    requests = []
    for request in await _requests(connection, runtime, subject_id):
        email = request["guardian_email"]
        request["guardian_email"] = mask_email(email) if email else None
        requests.append(msgspec.convert(request, RequestView))  # drops the birth date
    consents = [msgspec.convert(c, ConsentView) for c in await _consents(connection, subject_id)]
    return SubjectOverview(subject_id=subject_id, requests=requests, consents=consents)


async def export(connection: Connection, runtime: Runtime, subject_id: str) -> SubjectExport:
    """Everything stored about the child and the guardian, decrypted (GDPR Art. 15 and 20)."""
    requests = await _requests(connection, runtime, subject_id)
    consents = await _consents(connection, subject_id)
    messages = await connection.fetch(
        """
        select id, kind, topic, status, attempts, created_at, sent_at
        from outbox where subject_id = $1 order by created_at
        """,
        subject_id,
    )
    return SubjectExport(
        subject_id=subject_id,
        exported_at=runtime.clock.now(),
        requests=[msgspec.to_builtins(r) for r in requests],
        consents=[msgspec.to_builtins(c) for c in consents],
        events=await subject_events(connection, subject_id),
        messages=[msgspec.convert(dict(m), MessageRecord) for m in messages],
    )


async def lock_subject(connection: Connection, subject_id: str) -> list[uuid.UUID]:
    """Lock a subject and all its rows (requests before consents, the order grants use).

    Whatever was in flight for the subject finishes first and everything it wrote is seen.
    Call it inside a transaction, before anything that appends to the audit chain.
    """
    await advisory_lock(connection, "subject", subject_id)
    rows = await connection.fetch(
        "select id from consent_requests where subject_id = $1 order by id for update", subject_id
    )
    await connection.execute(
        "select 1 from consents where subject_id = $1 order by id for update", subject_id
    )
    return [row["id"] for row in rows]


async def erase(
    connection: Connection, runtime: Runtime, subject_id: str, *, actor: str
) -> ErasureReceipt:
    """Erase a subject everywhere (GDPR Art. 17(1)(f), COPPA 312.6), keeping a tombstone.

    Request and consent rows and undelivered emails are deleted; audit events lose their
    personal fields (the chain still verifies, see ``service.db.audit_events``); one anonymous
    ``subject.erased`` event records that it happened. Pending webhooks stay so the main app
    still learns what changed, and a ``subject.erased`` webhook tells it to erase its copy.
    """
    now = runtime.clock.now()
    async with connection.transaction():
        request_ids = await lock_subject(connection, subject_id)
        await connection.execute("delete from idempotency_keys where subject_id = $1", subject_id)
        consents = await connection.fetchval(
            "with gone as (delete from consents where subject_id = $1 returning 1) "
            "select count(*) from gone",
            subject_id,
        )
        await connection.execute("delete from consent_requests where subject_id = $1", subject_id)
        messages = await connection.fetchval(
            """
            with gone as (
                delete from outbox where subject_id = $1 and (kind = 'email' or status <> 'pending')
                returning 1
            ) select count(*) from gone
            """,
            subject_id,
        )
        await connection.execute("set local consent.redaction = 'on'")
        redacted = await connection.fetchval(
            """
            with done as (
                update audit_events
                set subject_id = null, reason = null, details = '{}'::jsonb,
                    personal_salt = null, redacted = true
                where subject_id = $1 returning 1
            ) select count(*) from done
            """,
            subject_id,
        )
        await connection.execute("set local consent.redaction = 'off'")
        if runtime.settings.webhook_url:
            await outbox.enqueue_webhook(
                connection,
                event_type="subject.erased",
                subject_id=subject_id,
                related_id=uuid.uuid4(),
                data={"subject_id": subject_id, "status": "erased"},
                now=now,
            )
        receipt = ErasureReceipt(
            subject_id=subject_id,
            erased_at=now,
            requests=len(request_ids),
            consents=int(consents),
            messages=int(messages),
            events_redacted=int(redacted),
        )
        await record_event(
            connection,
            actor=actor,
            action="subject.erased",
            occurred_at=now,
            details={
                "requests": receipt.requests,
                "consents": receipt.consents,
                "messages": receipt.messages,
                "events_redacted": receipt.events_redacted,
            },
        )
    return receipt
