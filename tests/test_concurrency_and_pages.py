"""Regression tests for recent concurrency and guardian-page fixes: erasure racing the worker's
sweeps and retention purges (no deadlock, no 500), a failed submission counted after the request
is gone, guardian paths answering with HTML, a child coming of age shown on GET, a re-grant over
a lapsed but unswept consent, and outbox claim ids.

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
from service.db.consents import LAPSE_REASON
from service.delivery import outbox
from service.security.personal_data import normalize_email
from service.worker import Worker
from tests.conftest import guardian_link
from tests.guardian_client import csrf_token, path_of, review_csrf
from tests.staff_support import (
    ALL_PURPOSES,
    DAY,
    GRANT_ALL,
    PERSONAL_TABLES,
    PROBLEM_JSON,
    SECOND,
    WEBHOOK_SECRET,
    Service,
    birth_date_turning,
    birth_date_years_ago,
    check,
    create_request,
    grant_via_link,
    granted_consent,
    open_request,
    personal_traces,
    start_service,
    webhook_receiver,
    withdraw_csrf,
    withdraw_via_form,
)

T = TypeVar("T")

SUBJECT = "child-race-1"
GUARDIAN = "race.parent@example.com"
OTHER_GUARDIAN = "second.parent@example.com"
USED_HEADING = "This link has already been used"
UNKNOWN_HEADING = "This link is not valid"
NOT_REQUIRED_SL = "Vaše soglasje ni več potrebno"
NOT_REQUIRED_EN = "Your consent is no longer needed"


# ---- helpers -----------------------------------------------------------------------------------


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


def is_html(response: httpx.Response) -> bool:
    return response.headers["content-type"].startswith("text/html")


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


async def request_row(db: asyncpg.Connection, request_id: uuid.UUID) -> asyncpg.Record:
    row = await db.fetchrow("select * from consent_requests where id = $1", request_id)
    assert row is not None
    return row


# ---- 1. withdraw + erase while a sweep holds a row and then wants the audit chain -------------


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
                data={"confirm": "yes", "erase": "yes", "_csrf_token": token},
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


# ---- 2. staff erasure racing the retention purge -----------------------------------------------


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
        assert len(await subjects.lock_subject(eraser, SUBJECT)) == 1
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


# ---- 3. a failed submission counted after the request was decided or erased ------------------


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


async def test_an_erasure_between_deciding_and_counting_shows_a_link_page(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The erasure is placed exactly between the invalid form's decide and its counting by
    running it (for real, on another connection) just before the real count."""
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
    response = await svc.client.post(
        path_of(link), data={"decision": "maybe", "_csrf_token": token}
    )

    assert counted == [None]
    assert response.status_code in (404, 410), response.text
    assert is_html(response)
    assert USED_HEADING in response.text or UNKNOWN_HEADING in response.text
    await assert_subject_erased(svc, api, db, birth=birth, actor="staff:alice")


# ---- 4. guardian paths answer errors with HTML -----------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/guardian", 404),
        ("POST", "/guardian", 404),
        ("GET", "/guardian/", 404),
        ("POST", "/guardian/", 404),
        ("PUT", "/guardian/withdraw/" + "a" * 43, 405),
        ("DELETE", "/guardian/" + "a" * 43, 405),
    ],
)
async def test_guardian_paths_answer_errors_with_an_html_page(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(
        method,
        path,
        data={"decision": "grant"} if method != "GET" else None,
        headers={"Accept": "application/json"},
    )
    assert response.status_code == status, response.text
    assert is_html(response), response.headers
    assert not response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.text.lstrip().startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in response.text
    assert response.headers["x-frame-options"] == "DENY"


async def test_a_nul_in_a_guardian_path_posted_to_is_an_html_page(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/guardian/a%00b", data={"decision": "grant"})
    assert 400 <= response.status_code < 500, response.text
    assert is_html(response)


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"decision": "gr\x00ant"}, 422),
        ({"decision": "grant", "purposes": ["tutor\x00ing"], "attestation": "yes"}, 422),
        ({"decision": "grant", "purposes": ALL_PURPOSES, "attestation": "y\x00es"}, 422),
        ({"deci\x00sion": "deny"}, 422),
        ({"decision": "\x00", "_csrf_token": "\x00"}, 403),
    ],
    ids=["decision", "purpose", "attestation", "field-name", "csrf"],
)
async def test_a_nul_in_a_review_form_field_is_an_html_4xx(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    form: dict[str, Any],
    status: int,
) -> None:
    request_id, link = await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    page = await svc.client.get(path_of(link))
    response = await svc.client.post(
        path_of(link), data={"_csrf_token": csrf_token(page.text), **form}
    )
    assert response.status_code == status, response.text
    assert is_html(response)
    assert (await request_row(db, uuid.UUID(request_id)))["status"] == "pending"
    assert await db.fetchval("select count(*) from consents") == 0


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"confirm": "y\x00es"}, 422),
        ({"confirm": "yes", "_csrf_token": "abc\x00def"}, 403),
    ],
    ids=["confirm", "csrf"],
)
async def test_a_nul_in_the_withdrawal_form_is_an_html_4xx(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    form: dict[str, Any],
    status: int,
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    token = await withdraw_csrf(svc.client, granted.withdraw_path)
    response = await svc.client.post(granted.withdraw_path, data={"_csrf_token": token, **form})
    assert response.status_code == status, response.text
    assert is_html(response)
    assert (await check(svc.client, api, SUBJECT))["status"] == "granted"


# ---- 5. the child's coming of age is shown on GET, acted on by POST ---------------------------


async def test_coming_of_age_is_shown_on_get_in_the_requests_language_and_closed_by_post(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    email = "polnoletnost@example.com"
    birth = birth_date_turning(clock, 15, in_days=2)
    request_id = await create_request(
        client,
        auth,
        subject_id="child-of-age-sl",
        email=email,
        birth_date=birth.isoformat(),
        locale="sl",
    )
    assert await worker.deliver_due() == 1
    link = guardian_link(mailbox.to(email)[-1].text)
    token = await review_csrf(client, link)

    clock.advance(timedelta(days=3))  # the child is 15 now; the 7-day link is still valid
    assert clock.now() < (await request_row(db, request_id))["expires_at"]

    for _ in range(2):  # mail scanners fetch links more than once
        shown = await client.get(path_of(link))
        assert shown.status_code == 410, shown.text
        assert is_html(shown)
        assert '<html lang="sl">' in shown.text
        assert NOT_REQUIRED_SL in shown.text
        assert NOT_REQUIRED_EN not in shown.text
        assert "child-of-age-sl" not in shown.text
    # A GET changes nothing.
    row = await request_row(db, request_id)
    assert row["status"] == "pending"
    assert row["decided_at"] is None
    assert row["guardian_email_enc"] is not None
    assert row["failed_submissions"] == 0
    assert (
        await db.fetchval("select count(*) from audit_events where action = 'request.expired'") == 0
    )

    posted = await client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token})
    assert posted.status_code == 410, posted.text
    assert '<html lang="sl">' in posted.text
    assert NOT_REQUIRED_SL in posted.text
    closed = await request_row(db, request_id)
    assert closed["status"] == "expired"
    assert closed["decided_at"] == clock.now()
    assert closed["guardian_email_enc"] is None
    assert closed["guardian_email_hash"] is None
    assert closed["birth_date"] is None
    assert await db.fetchval("select count(*) from consents") == 0


# ---- 6. a re-grant over a lapsed consent the worker has not swept yet -------------------------


async def test_a_regrant_over_a_lapsed_unswept_consent_expires_it_without_a_replaced_email(
    base_env: dict[str, str],
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    birth = birth_date_years_ago(clock)
    async with (
        webhook_receiver() as receiver,
        start_service(
            base_env,
            clock,
            {
                "CONSENT_MAX_VALIDITY": "86400",
                "CONSENT_WEBHOOK_URL": receiver.url,
                "CONSENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            },
        ) as svc,
    ):
        first = await granted_consent(
            svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN, birth_date=birth
        )
        old_id = uuid.UUID(first.consent_id)
        old = await db.fetchrow("select granted_at, expires_at from consents where id = $1", old_id)
        assert old is not None
        assert old["expires_at"] == old["granted_at"] + DAY
        await svc.worker.deliver_due()  # the confirmation (no delay) and the webhooks

        clock.advance(2 * DAY)  # lapsed; the worker has not swept
        assert await db.fetchval("select status from consents where id = $1", old_id) == "granted"
        mailbox.clear()
        _, link = await open_request(
            svc, api, mailbox, subject_id=SUBJECT, email=OTHER_GUARDIAN, birth_date=birth
        )
        await grant_via_link(svc.client, link)  # 200 and a withdrawal link

        ended = await db.fetchrow(
            "select status, ended_at, end_reason from consents where id = $1", old_id
        )
        assert ended is not None
        assert ended["status"] == "expired"
        assert ended["ended_at"] == old["expires_at"]
        assert ended["end_reason"] == LAPSE_REASON
        live = await db.fetch(
            "select id from consents where subject_id = $1 and status = 'granted'", SUBJECT
        )
        assert len(live) == 1
        answer = await check(svc.client, api, SUBJECT)
        assert answer["status"] == "granted"
        assert answer["consent_id"] == str(live[0]["id"])

        [event] = await db.fetch(
            "select * from audit_events where action = 'consent.expired' and consent_id = $1",
            old_id,
        )
        assert event["actor"] == "system"
        assert (event["from_status"], event["to_status"]) == ("granted", "expired")
        assert event["occurred_at"] == clock.now()
        assert (
            await db.fetchval(
                "select count(*) from audit_events where action = 'consent.superseded'"
            )
            == 0
        )
        assert (
            await db.fetchval("select count(*) from outbox where topic = 'consent_replaced'") == 0
        )

        await svc.worker.deliver_due()
        assert mailbox.to(GUARDIAN) == []
        replaced = [m for m in mailbox.messages if "replaced" in m.subject]
        assert replaced == []
        assert len(mailbox.to(normalize_email(OTHER_GUARDIAN))) == 2  # request, confirmation
        lapsed = [
            d.json()["data"]
            for d in receiver.of_type("consent.expired")
            if d.json()["data"]["consent_id"] == str(old_id)
        ]
        assert len(lapsed) == 1
        assert lapsed[0]["status"] == "expired"

        # The sweep has nothing left to lapse and records no second event.
        assert (await svc.worker.sweep())["lapsed_consents"] == 0
        assert (
            await db.fetchval("select count(*) from audit_events where action = 'consent.expired'")
            == 1
        )
        stale = await svc.client.get(first.withdraw_path)
        assert stale.status_code == 410, stale.text


# ---- 7. outbox claim ids ----------------------------------------------------------------------


async def _claim_id(db: asyncpg.Connection, item_id: uuid.UUID) -> uuid.UUID | None:
    value: uuid.UUID | None = await db.fetchval(
        "select claim_id from outbox where id = $1", item_id
    )
    return value


async def test_each_claim_has_its_own_id_and_a_stale_claimer_cannot_touch_a_retried_message(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    await create_request(
        client, auth, subject_id=SUBJECT, email=GUARDIAN, birth_date=birth_date_years_ago(clock)
    )
    [first] = await outbox.claim_due(db, now=clock.now(), limit=10)
    assert await _claim_id(db, first.id) == first.claim_id

    clock.advance(outbox.CLAIM_LEASE + SECOND)  # the first claimer's lease ran out
    [second] = await outbox.claim_due(db, now=clock.now(), limit=10)
    assert second.id == first.id
    assert second.claim_id != first.claim_id
    assert await _claim_id(db, first.id) == second.claim_id

    # The second claimer gives up on it; an operator puts it back in the queue.
    state = await outbox.mark_failed(
        db, second, error="SMTPServerDisconnected", now=clock.now(), max_attempts=second.attempts
    )
    assert state == "dead"
    assert await db.fetchval("select status from outbox where id = $1", first.id) == "dead"
    assert await outbox.retry_dead(db, first.id, clock.now()) == "guardian_request"
    assert await _claim_id(db, first.id) is None

    # Both earlier claimers wake up late: neither a success nor a failure may count.
    for stale in (first, second):
        await outbox.mark_sent(db, stale, clock.now())
        await outbox.mark_failed(db, stale, error="Stale", now=clock.now(), max_attempts=1)
    row = await db.fetchrow("select * from outbox where id = $1", first.id)
    assert row is not None
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 0, None)
    assert row["payload_enc"] is not None
    assert row["sent_at"] is None
    assert mailbox.to(GUARDIAN) == []

    assert await worker.deliver_due() == 1
    assert len(mailbox.to(GUARDIAN)) == 1
    delivered = await db.fetchrow("select * from outbox where id = $1", first.id)
    assert delivered is not None
    assert (delivered["status"], delivered["attempts"]) == ("sent", 1)
    assert delivered["claim_id"] not in (None, first.claim_id, second.claim_id)
