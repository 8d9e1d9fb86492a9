"""SQL that reads or erases everything about one subject, across tables."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import msgspec

from service.db import data_requests, idempotency_keys, rectification
from service.db.check_cache import CHECK_TOPIC
from service.db.connection import Connection
from service.db.consents import PurposeWithdrawal
from service.db.invalidation import publish
from service.states import ConsentStatus, OutboxKind, OutboxStatus, RequestStatus


class GuardianSubject(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    requests: int
    latest_request_at: datetime


class SubjectRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A request row with the API's names; the guardian email still encrypted."""

    id: uuid.UUID
    status: RequestStatus
    country: str
    age_of_consent: int
    basis: str
    birth_date: date | None
    consent_required_until: date
    guardian_email_enc: bytes | None
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
    child_hint_enc: bytes | None = None
    reminded_at: datetime | None = None


class SubjectConsent(msgspec.Struct, frozen=True, kw_only=True):
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
    token: str | None
    purpose_methods: dict[str, str]
    withdrawn_purposes: list[PurposeWithdrawal]


class SubjectMessage(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    # the request or consent the message is about
    related_id: uuid.UUID | None
    kind: OutboxKind
    topic: str
    status: OutboxStatus
    attempts: int
    created_at: datetime
    sent_at: datetime | None


class ErasedRows(msgspec.Struct, frozen=True, kw_only=True):
    consents: int
    messages: int
    events_redacted: int
    data_requests: int


async def subjects_of_guardian(
    connection: Connection, guardian_email_hashes: list[bytes]
) -> list[GuardianSubject]:
    rows = await connection.fetch(
        """
        select subject_id, count(*) as requests, max(created_at) as latest_request_at
        from consent_requests where guardian_email_hash = any($1::bytea[])
        group by subject_id order by max(created_at) desc
        """,
        guardian_email_hashes,
    )
    return [msgspec.convert(dict(row), GuardianSubject) for row in rows]


async def requests_of(
    connection: Connection, subject_id: str, pseudonym: str
) -> list[SubjectRequest]:
    """The subject's requests, those purged after retention (found by ``pseudonym``) too."""
    rows = await connection.fetch(
        """
        select id, status, country, age_of_consent, basis, birth_date, consent_required_until,
               guardian_email_enc, guardian_ref as guardian, purposes, locale, policy_version,
               created_at, expires_at, decided_at, purged_at, joint_consent, child_agreed,
               child_hint_enc, reminded_at
        from consent_requests where subject_id in ($1, $2) order by created_at
        """,
        subject_id,
        pseudonym,
    )
    return [msgspec.convert(dict(row), SubjectRequest) for row in rows]


async def consents_of(
    connection: Connection, subject_id: str, pseudonym: str
) -> list[SubjectConsent]:
    rows = await connection.fetch(
        """
        select id, request_id, status, purposes, jurisdiction, method, policy_version,
               guardian_ref as guardian, granted_at, expires_at, ended_at, end_reason, token,
               purpose_methods, withdrawn_purposes
        from consents where subject_id in ($1, $2) order by granted_at
        """,
        subject_id,
        pseudonym,
    )
    return [
        msgspec.convert(
            {
                **row,
                "purpose_methods": msgspec.json.decode(row["purpose_methods"]),
                "withdrawn_purposes": msgspec.json.decode(row["withdrawn_purposes"]),
            },
            SubjectConsent,
        )
        for row in rows
    ]


async def messages_of(connection: Connection, subject_id: str) -> list[SubjectMessage]:
    rows = await connection.fetch(
        """
        select id, related_id, kind, topic, status, attempts, created_at, sent_at
        from outbox where subject_id = $1 order by created_at
        """,
        subject_id,
    )
    return [msgspec.convert(dict(row), SubjectMessage) for row in rows]


async def lock_rows(connection: Connection, subject_id: str) -> list[uuid.UUID]:
    """Lock the subject's requests, then its consents (the order grants use); the request ids."""
    rows = await connection.fetch(
        "select id from consent_requests where subject_id = $1 order by id for update", subject_id
    )
    await connection.execute(
        "select 1 from consents where subject_id = $1 order by id for update", subject_id
    )
    return [row["id"] for row in rows]


async def erase_rows(
    connection: Connection, subject_id: str, now: datetime, pseudonym: str
) -> ErasedRows:
    """Delete the subject's records (those purged after retention too, found by their
    ``pseudonym``) and emails, and blank its audit events' and rights requests' personal
    fields.

    Webhooks still pending stay: the main app must still learn what changed. A rights request
    keeps its anonymous facts: that it was made, and when it was due and answered.
    """
    await idempotency_keys.delete_for_subject(connection, subject_id)
    # before the consents they point to
    await rectification.delete_for_subject(connection, subject_id)
    consents = await connection.fetchval(
        "with gone as (delete from consents where subject_id in ($1, $2) returning 1) "
        "select count(*) from gone",
        subject_id,
        pseudonym,
    )
    await connection.execute(
        "delete from consent_requests where subject_id in ($1, $2)", subject_id, pseudonym
    )
    await connection.execute("delete from subject_restrictions where subject_id = $1", subject_id)
    # the triggers name the pseudonym of a purged record; replicas cache the check by the id
    await publish(connection, f"{CHECK_TOPIC}:{subject_id}")
    messages = await connection.fetchval(
        """
        with gone as (
            delete from outbox where subject_id = $1 and (kind = 'email' or status <> 'pending')
            returning 1
        ) select count(*) from gone
        """,
        subject_id,
    )
    # the webhooks still queued tell the app what changed; then they keep nothing personal
    await connection.execute(
        "update outbox set scrub_when_done = true where subject_id = $1", subject_id
    )
    erased_requests = await data_requests.erase_for_subject(connection, subject_id, now)
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
    return ErasedRows(
        consents=int(consents),
        messages=int(messages),
        events_redacted=int(redacted),
        data_requests=erased_requests,
    )
