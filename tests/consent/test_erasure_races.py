"""Erasure racing the worker and the guardian: a withdraw+erase while a sweep holds the child's
request, a staff erasure against the retention purge (no deadlock, no 500), and a failed
submission counted after the request was decided or erased.

Real PostgreSQL and a real SMTP server throughout. Interleavings are forced with locks and
ordered by bounded polling of ``pg_locks`` (through ``pg_blocking_pids``), never by timing;
time moves only through the ManualClock.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Coroutine
from datetime import date, timedelta
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest

from service.clock import ManualClock
from service.consent import decisions, retention, subjects, sweeps
from service.db.audit_events import AUDIT_CHAIN_LOCK, verify_chain
from tests.support.dates import DAY, SECOND, birth_date_years_ago
from tests.support.flows import (
    ALL_PURPOSES,
    GRANT_ALL,
    check,
    create_request,
    grant_via_link,
    granted_consent,
    open_request,
    withdraw_csrf,
    withdraw_via_form,
)
from tests.support.guardian_client import csrf_token, is_html, path_of
from tests.support.service import Service
from tests.support.stored_data import PERSONAL_TABLES, personal_traces, request_row

T = TypeVar("T")

SUBJECT = "child-race-1"
GUARDIAN = "race.parent@example.com"
USED_HEADING = "This link has already been used"
UNKNOWN_HEADING = "This link is not valid"


# ---- helpers ---------------------------------------------------------------------------------


async def _blocked_by(db: asyncpg.Connection, holder_pid: int) -> int:
    blocked: int = await db.fetchval(
        """
        select count(*) from pg_stat_activity
        where datname = current_database() and $1 = any(pg_blocking_pids(pid))
        """,
        holder_pid,
    )
    return blocked


async def wait_until_blocked_by(
    db: asyncpg.Connection,
    holder: asyncpg.Connection,
    what: str,
    *,
    task: asyncio.Future[Any] | None = None,
) -> None:
    """Until another session waits for a lock ``holder`` holds (bounded polling of pg_locks)."""
    pid = holder.get_server_pid()
    for _ in range(1000):
        if await _blocked_by(db, pid):
            return
        if task is not None and task.done():
            pytest.fail(f"finished instead of waiting ({what}): {task.result()!r}")
        await asyncio.sleep(0.01)
    pytest.fail(f"gave up waiting: {what}")


async def finishes_without_waiting(
    db: asyncpg.Connection, work: Coroutine[Any, Any, T], holder: asyncpg.Connection, what: str
) -> T:
    """Run ``work``; fail if it ever waits for a lock ``holder`` holds (bounded polling)."""
    task = asyncio.ensure_future(work)
    pid = holder.get_server_pid()
    for _ in range(1000):
        if task.done():
            return task.result()
        if await _blocked_by(db, pid):
            await holder.close()  # let it finish, then report
            with contextlib.suppress(Exception):
                await task
            pytest.fail(f"{what} waited for locked rows instead of skipping them")
        await asyncio.sleep(0.01)
    pytest.fail(f"{what} did not finish")


async def settle(*tasks: asyncio.Future[Any]) -> None:
    """After a failure: let started requests finish so no task outlives the test."""
    for task in tasks:
        with contextlib.suppress(BaseException):
            await task


async def assert_subject_erased(
    svc: Service, api: dict[str, str], db: asyncpg.Connection, *, birth: str, actor: str
) -> None:
    answer = await check(svc.client, api, SUBJECT)
    assert answer["status"] == "none", answer
    assert answer["consent_id"] is None
    for table in PERSONAL_TABLES:
        left = await db.fetchval(f"select count(*) from {table} where subject_id = $1", SUBJECT)
        assert left == 0, table
    traces = await personal_traces(
        db,
        texts=[GUARDIAN, "race.parent", SUBJECT],
        dates=[date.fromisoformat(birth)],
    )
    assert traces == []
    tombstones = await db.fetch("select actor from audit_events where action = 'subject.erased'")
    assert [t["actor"] for t in tombstones] == [actor]
    checked, broken = await verify_chain(db)
    assert broken is None, broken
    assert checked == await db.fetchval("select count(*) from audit_events")


# ---- withdraw + erase while a sweep holds a row and then wants the audit chain ---------------


# the guardian's opt-in erasure: offered only when a withdrawal does not erase anyway
@pytest.mark.parametrize("svc_env", [{"CONSENT_WITHDRAWAL_ERASES": "false"}])
async def test_withdraw_and_erase_while_a_sweep_holds_an_overdue_request_does_not_deadlock(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    database_url: str,
) -> None:
    """The reviewer's deadlock: the sweep has locked the child's overdue request and will take
    the audit chain lock next; the guardian's withdraw+erase must not hold the chain lock while
    it waits for that row."""
    birth = birth_date_years_ago(clock)
    granted = await granted_consent(
        svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN, birth_date=birth
    )
    newer = await create_request(
        svc.client, api, subject_id=SUBJECT, email=GUARDIAN, birth_date=birth
    )
    newer_row = await request_row(db, newer)
    clock.set(newer_row["expires_at"] + SECOND)  # overdue, not swept yet; the consent is live
    token = await withdraw_csrf(svc.client, granted.withdraw_path)
    mailbox.clear()

    sweep = await asyncpg.connect(database_url)
    withdrawing: asyncio.Task[httpx.Response] | None = None
    try:
        transaction = sweep.transaction()
        await transaction.start()
        # the worker's sweep has picked the overdue request ...
        await sweep.execute("select 1 from consent_requests where id = $1 for update", newer)
        withdrawing = asyncio.create_task(
            svc.client.post(
                granted.withdraw_path,
                data={
                    "confirm": "yes",
                    "purposes": ALL_PURPOSES,
                    "erase": "yes",
                    "_csrf_token": token,
                },
            )
        )
        await wait_until_blocked_by(
            db, sweep, "the guardian's erasure waits for the sweep's row", task=withdrawing
        )
        # ... and now appends to the audit chain, like record_event, then commits.
        await sweep.execute("select pg_advisory_xact_lock($1)", AUDIT_CHAIN_LOCK)
        assert await sweeps.expire_overdue_requests(sweep, svc.runtime) == 1
        await transaction.commit()
        response = await withdrawing
    finally:
        await sweep.close()
        if withdrawing is not None:
            await settle(withdrawing)

    assert response.status_code == 200, response.text
    assert is_html(response)
    assert 'name="erase"' not in response.text  # the withdrawn page, not the form again
    await assert_subject_erased(svc, api, db, birth=birth, actor="guardian")
    # The sweep's own event committed first; the erasure still found and redacted it.
    [expired] = await db.fetch(
        "select subject_id, redacted from audit_events where action = 'request.expired'"
    )
    assert (expired["subject_id"], expired["redacted"]) == (None, True)
    clock.advance(DAY)
    await svc.worker.sweep()
    await svc.worker.deliver_due()
    assert mailbox.to(GUARDIAN) == []


# ---- staff erasure racing the retention purge ------------------------------------------------


async def _withdrawn_past_retention(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, birth: str
) -> uuid.UUID:
    granted = await granted_consent(
        svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN, birth_date=birth
    )
    withdrawn = await withdraw_via_form(svc.client, granted.withdraw_path)
    assert withdrawn.status_code == 200, withdrawn.text
    await svc.worker.deliver_due()
    clock.advance(timedelta(seconds=svc.settings.retention_withdrawn) + SECOND)
    mailbox.clear()
    return uuid.UUID(granted.consent_id)


def _erase(svc: Service) -> asyncio.Task[httpx.Response]:
    return asyncio.create_task(
        svc.client.delete(f"/v1/subjects/{SUBJECT}", headers=svc.staff("admin"))
    )


async def test_erasure_waiting_on_a_consent_row_does_not_deadlock_with_the_purge(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    database_url: str,
) -> None:
    """A purge transaction holds the consent row; the erasure locks the request row and waits
    for the consent; the purge then reaches for the request row: it must skip it, not wait
    (waiting would close the cycle: a deadlock and a 500 for the erasure)."""
    birth = birth_date_years_ago(clock)
    consent_id = await _withdrawn_past_retention(svc, api, mailbox, clock, birth)

    purger = await asyncpg.connect(database_url)
    erasing: asyncio.Task[httpx.Response] | None = None
    try:
        transaction = purger.transaction()
        await transaction.start()
        await purger.execute("select 1 from consents where id = $1 for update", consent_id)
        erasing = _erase(svc)
        await wait_until_blocked_by(
            db, purger, "the erasure waits for the consent row", task=erasing
        )
        purged = await retention.purge_consents(purger, svc.runtime)
        await transaction.commit()
        erased = await erasing
    finally:
        await purger.close()
        if erasing is not None:
            await settle(erasing)

    assert purged == 0
    assert erased.status_code == 200, erased.text
    assert erased.json()["consents"] == 1
    await assert_subject_erased(svc, api, db, birth=birth, actor="staff:alice")
    assert (
        await db.fetchval("select count(*) from audit_events where action = 'consent.purged'") == 0
    )


async def test_erasure_waits_for_a_purge_that_holds_the_rows_and_then_erases(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    database_url: str,
) -> None:
    """The real purge holds both rows and waits at its audit append (the test holds the chain
    lock); the erasure queues behind its rows; once the purge commits, the erasure finishes."""
    birth = birth_date_years_ago(clock)
    consent_id = await _withdrawn_past_retention(svc, api, mailbox, clock, birth)

    gate = await asyncpg.connect(database_url)
    purger = await asyncpg.connect(database_url)
    started: list[asyncio.Future[Any]] = []
    try:
        await gate.execute("select pg_advisory_lock($1)", AUDIT_CHAIN_LOCK)
        purging = asyncio.ensure_future(retention.purge_consents(purger, svc.runtime))
        started.append(purging)
        await wait_until_blocked_by(db, gate, "the purge waits at its audit append", task=purging)
        erasing = _erase(svc)
        started.append(erasing)
        await wait_until_blocked_by(
            db, purger, "the erasure waits for the purge's rows", task=erasing
        )
        await gate.execute("select pg_advisory_unlock($1)", AUDIT_CHAIN_LOCK)
        purged, erased = await asyncio.gather(purging, erasing)
    finally:
        await gate.close()
        await settle(*started)
        await purger.close()

    assert purged == 1
    assert erased.status_code == 200, erased.text
    await assert_subject_erased(svc, api, db, birth=birth, actor="staff:alice")
    [event] = await db.fetch("select * from audit_events where action = 'consent.purged'")
    assert event["consent_id"] == consent_id
    assert event["subject_id"] is None


@pytest.mark.parametrize("ending", ["rollback", "erase"])
async def test_the_purge_skips_a_subject_whose_rows_an_erasure_holds(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    database_url: str,
    ending: str,
) -> None:
    birth = birth_date_years_ago(clock)
    consent_id = await _withdrawn_past_retention(svc, api, mailbox, clock, birth)

    eraser = await asyncpg.connect(database_url)
    purger = await asyncpg.connect(database_url)
    try:
        transaction = eraser.transaction()
        await transaction.start()
        assert len(await subjects.lock_subject_records(eraser, SUBJECT)) == 1
        purged = await finishes_without_waiting(
            db, retention.purge_consents(purger, svc.runtime), eraser, "the purge"
        )
        assert purged == 0
        if ending == "rollback":
            await transaction.rollback()
            assert await retention.purge_consents(purger, svc.runtime) == 1
            row = await db.fetchrow(
                "select token, withdraw_token_hash, purged_at from consents where id = $1",
                consent_id,
            )
            assert row is not None
            assert (row["token"], row["withdraw_token_hash"]) == (None, None)
            assert row["purged_at"] == clock.now()
        else:
            await subjects.erase(eraser, svc.runtime, SUBJECT, actor="staff:alice")
            # the erasure now holds the chain lock too; a purge with nothing to do never asks
            purged = await finishes_without_waiting(
                db, retention.purge_consents(purger, svc.runtime), eraser, "the purge"
            )
            assert purged == 0
            await transaction.commit()
            assert await retention.purge_consents(purger, svc.runtime) == 0
    finally:
        await eraser.close()
        await purger.close()

    if ending == "erase":
        await assert_subject_erased(svc, api, db, birth=birth, actor="staff:alice")


# ---- a failed submission counted after the request was decided or erased ---------------------


async def test_counting_a_failed_submission_on_a_decided_or_erased_request_is_none(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    request_id, link = await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    rid = uuid.UUID(request_id)
    assert await decisions.record_failed_submission(db, rid) == 1

    await grant_via_link(svc.client, link)
    assert await decisions.record_failed_submission(db, rid) is None
    assert (await request_row(db, rid))["failed_submissions"] == 1

    erased = await svc.client.delete(f"/v1/subjects/{SUBJECT}", headers=svc.staff("admin"))
    assert erased.status_code == 200, erased.text
    assert await decisions.record_failed_submission(db, rid) is None
    assert await db.fetchval("select count(*) from consent_requests") == 0


async def test_an_invalid_form_on_a_decided_then_erased_request_shows_a_link_page(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    request_id, link = await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    page = await svc.client.get(path_of(link))
    token = csrf_token(page.text)
    granted = await svc.client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token})
    assert granted.status_code == 200, granted.text

    # A second tab still shows the form; the guardian submits it without a decision.
    invalid = await svc.client.post(path_of(link), data={"decision": "maybe", "_csrf_token": token})
    assert invalid.status_code == 410, invalid.text
    assert is_html(invalid)
    assert USED_HEADING in invalid.text
    assert (await request_row(db, uuid.UUID(request_id)))["failed_submissions"] == 0

    erased = await svc.client.delete(f"/v1/subjects/{SUBJECT}", headers=svc.staff("admin"))
    assert erased.status_code == 200, erased.text
    gone = await svc.client.post(path_of(link), data={"decision": "maybe", "_csrf_token": token})
    assert gone.status_code == 404, gone.text
    assert is_html(gone)
    assert UNKNOWN_HEADING in gone.text


async def test_an_erasure_between_finding_and_counting_a_refused_form_is_harmless(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The erasure is placed exactly between finding the link of a form the CSRF check refused
    and counting it, by running it (for real, on another connection) just before the real
    count."""
    birth = birth_date_years_ago(clock)
    _, link = await open_request(
        svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN, birth_date=birth
    )
    page = await svc.client.get(path_of(link))
    token = csrf_token(page.text)
    real_count = decisions.record_failed_submission
    counted: list[int | None] = []

    async def erase_then_count(connection: Any, request_id: uuid.UUID) -> int | None:
        async with svc.pool.acquire() as other:
            await subjects.erase(other, svc.runtime, SUBJECT, actor="staff:alice")
        counted.append(await real_count(connection, request_id))
        return counted[-1]

    monkeypatch.setattr(decisions, "record_failed_submission", erase_then_count)
    assert token
    response = await svc.client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": "0" * 128})

    assert counted == [None]
    assert response.status_code == 403, response.text
    assert is_html(response)
    assert "reload the page" in response.text
    await assert_subject_erased(svc, api, db, birth=birth, actor="staff:alice")
