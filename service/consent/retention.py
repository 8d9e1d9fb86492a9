"""Retention: personal data of finished records is purged after configurable periods.

A purge keeps the record's status (so check can still answer) but removes the guardian's
address, its lookup hash, link tokens and the consent token, replaces the subject id and the
guardian reference by keyed pseudonyms (``DataProtector.subject_pseudonym``: check finds the
record by the pseudonym of the id it is asked about), blanks the personal fields of the
record's audit events (as erasure does; the chain still verifies) and strips the subject id
from its messages in the outbox. Each purge writes an anonymous audit event: no subject id, no
reason, only the record ids.

Every period the worker enforces comes from one :class:`RetentionPolicy`, and the written
retention policy (``consent-service retention-policy``, ``GET /privacy/retention``) is rendered
from that same object, so what the policy says is what the sweeps do.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import msgspec

from service.consent.purposes import Catalogue
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import consents as consents_repo
from service.db import guardian_dashboard, idempotency_keys, rate_limits, rectification
from service.db import outbox as outbox_table
from service.db.audit_events import SYSTEM_ACTOR, record_event, redact_events_of_records
from service.db.connection import Connection
from service.settings import Settings

BATCH = 500
# A client retrying with the same Idempotency-Key gets the first answer for this long.
IDEMPOTENCY_RETENTION = timedelta(days=1)
RATE_WINDOW_RETENTION = timedelta(hours=1)
# The count of one-time codes emailed to one address is kept over a day (its window) and
# deleted a day after that window began.
ADDRESS_CODE_COUNTER_RETENTION = timedelta(days=1)
# The dashboard's sign-in links and sessions last at most this long (a session: 2 hours), and
# are deleted this long after they end (the per-address limit counts the last day's links).
DASHBOARD_RECORD_LIFETIME = timedelta(hours=2)
DASHBOARD_RECORD_AFTER_END = timedelta(days=1)


class PurposeRetention(msgspec.Struct, frozen=True, kw_only=True):
    """How long the main app keeps the data of one purpose (the catalogue's ``retention_days``)."""

    id: str
    title: dict[str, str]
    data_categories: tuple[str, ...]
    kept_for: timedelta


class RetentionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Every retention period the service enforces, from settings and the purpose catalogue."""

    # A guardian link works this long; an unanswered request's address is deleted when it ends.
    pending_request: timedelta
    denied_request: timedelta
    # Requests that expired unanswered or were cancelled, counted from when they closed.
    closed_request: timedelta
    # Consents that lapsed (coming of age or maximum validity), counted from the lapse.
    lapsed_consent: timedelta
    # Consents withdrawn, revoked or replaced, counted from when they ended.
    ended_consent: timedelta
    # Emails never delivered (dead or cancelled) keep their encrypted payload this long.
    undelivered_message: timedelta
    idempotency_record: timedelta
    rate_limit_window: timedelta
    # The counters of one-time codes emailed to one address (a keyed hash of it).
    address_code_counter: timedelta = ADDRESS_CODE_COUNTER_RETENTION
    # A handoff's session, its one-time code and an address not confirmed yet, counted from
    # when the code from the child's screen was entered.
    handoff_session: timedelta = timedelta(minutes=30)
    # The dashboard's sign-in links and sessions, counted from when they were made.
    dashboard_sign_in: timedelta = DASHBOARD_RECORD_LIFETIME + DASHBOARD_RECORD_AFTER_END
    consent_max_validity: timedelta
    # How long before a consent lapses the guardian and the app are told (zero: not told).
    lapsing_notice: timedelta
    # A full withdrawal erases the guardian's data at once (CONSENT_WITHDRAWAL_ERASES).
    withdrawal_erases: bool
    purposes: tuple[PurposeRetention, ...]


def retention_policy(settings: Settings, catalogue: Catalogue) -> RetentionPolicy:
    return RetentionPolicy(
        pending_request=timedelta(seconds=settings.request_ttl),
        denied_request=timedelta(seconds=settings.retention_denied),
        closed_request=timedelta(seconds=settings.retention_expired),
        lapsed_consent=timedelta(seconds=settings.retention_expired),
        ended_consent=timedelta(seconds=settings.retention_withdrawn),
        undelivered_message=timedelta(seconds=settings.retention_expired),
        idempotency_record=IDEMPOTENCY_RETENTION,
        rate_limit_window=RATE_WINDOW_RETENTION,
        handoff_session=timedelta(seconds=settings.handoff_ttl),
        consent_max_validity=timedelta(seconds=settings.consent_max_validity),
        lapsing_notice=timedelta(days=settings.lapsing_notice_days),
        withdrawal_erases=settings.withdrawal_erases,
        purposes=tuple(
            PurposeRetention(
                id=purpose.id,
                title=purpose.title,
                data_categories=tuple(purpose.data_categories),
                kept_for=timedelta(days=purpose.retention_days),
            )
            for purpose in catalogue.purposes
        ),
    )


def policy_of(runtime: Runtime) -> RetentionPolicy:
    return retention_policy(runtime.settings, runtime.catalogue)


async def purge_requests(connection: Connection, runtime: Runtime) -> int:
    policy = policy_of(runtime)
    now = runtime.clock.now()
    async with connection.transaction():
        purged = await requests_repo.purge_closed(
            connection,
            now=now,
            denied_before=now - policy.denied_request,
            closed_before=now - policy.closed_request,
            limit=BATCH,
        )
        await _pseudonymize_requests(
            connection,
            runtime,
            [(request.id, request.subject_id, request.guardian_ref) for request in purged],
        )
        await redact_events_of_records(
            connection, sorted({r.subject_id for r in purged}), [r.id for r in purged], []
        )
        for request in purged:
            await record_event(
                connection,
                actor=SYSTEM_ACTOR,
                action="request.purged",
                occurred_at=now,
                request_id=request.id,
                from_status=request.status,
                to_status=request.status,
            )
    return len(purged)


async def purge_consents(connection: Connection, runtime: Runtime) -> int:
    policy = policy_of(runtime)
    now = runtime.clock.now()
    async with connection.transaction():
        purged = await consents_repo.purge_ended(
            connection,
            now=now,
            ended_before=now - policy.ended_consent,
            expired_before=now - policy.lapsed_consent,
            limit=BATCH,
        )
        await requests_repo.purge_answered(connection, [c.request_id for c in purged], now)
        protector = runtime.protector
        await consents_repo.pseudonymize(
            connection,
            [c.id for c in purged],
            [protector.subject_pseudonym(c.subject_id) for c in purged],
            [protector.guardian_pseudonym(c.guardian_ref) for c in purged],
        )
        await rectification.delete_for_consents(connection, [c.id for c in purged])
        await outbox_table.scrub_related(connection, [c.id for c in purged])
        await _pseudonymize_requests(
            connection, runtime, [(c.request_id, c.subject_id, c.guardian_ref) for c in purged]
        )
        await redact_events_of_records(
            connection,
            sorted({c.subject_id for c in purged}),
            [c.request_id for c in purged],
            [c.id for c in purged],
        )
        for consent in purged:
            await record_event(
                connection,
                actor=SYSTEM_ACTOR,
                action="consent.purged",
                occurred_at=now,
                request_id=consent.request_id,
                consent_id=consent.id,
                from_status=consent.status,
                to_status=consent.status,
            )
    return len(purged)


async def _pseudonymize_requests(
    connection: Connection, runtime: Runtime, purged: list[tuple[uuid.UUID, str, str]]
) -> None:
    """Purged requests (id, subject id, guardian reference) keep only pseudonyms of both; their
    messages lose the subject id."""
    protector = runtime.protector
    request_ids = [request_id for request_id, _, _ in purged]
    await requests_repo.pseudonymize(
        connection,
        request_ids,
        [protector.subject_pseudonym(subject_id) for _, subject_id, _ in purged],
        [protector.guardian_pseudonym(guardian_ref) for _, _, guardian_ref in purged],
    )
    await outbox_table.scrub_related(connection, request_ids)


async def purge_outbox(connection: Connection, runtime: Runtime) -> int:
    """Messages that were never delivered keep their (encrypted) address only so long."""
    before = runtime.clock.now() - policy_of(runtime).undelivered_message
    return await outbox_table.drop_undelivered_payloads(connection, before)


async def purge_idempotency_records(connection: Connection, runtime: Runtime) -> None:
    now = runtime.clock.now()
    await idempotency_keys.delete_older_than(
        connection, now - policy_of(runtime).idempotency_record
    )


async def purge_rate_limit_windows(connection: Connection, runtime: Runtime) -> None:
    now = runtime.clock.now()
    policy = policy_of(runtime)
    await rate_limits.purge_old_windows(
        connection,
        now - policy.rate_limit_window,
        daily_before=now - policy.address_code_counter,
    )
    # the dashboard's sign-in links, sessions and consent links, a day after they ended
    await guardian_dashboard.delete_finished(connection, now - DASHBOARD_RECORD_AFTER_END)
