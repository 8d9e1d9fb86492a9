"""The check cache's notices come from triggers, so every write publishes its subject on commit,
whoever makes it: the service, a sweep, or SQL typed by hand. And every table the check reads
carries such a trigger (measured by what the check query actually scans, so a table added to
it later is caught too)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from service.db.check_cache import CHECK_TABLES
from service.db.consents import check_row
from service.db.invalidation import CHANNEL
from tests.support.flows import create_request, granted_consent
from tests.support.service import Service

GUARDIAN = "Notify.Parent@Example.com"
SUBJECT = "child-notify-1"


class Notices:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        self.seen.append(payload)

    async def expect(self, wanted: Callable[[list[str]], bool], what: str) -> None:
        """Bounded wait for the notice; only giving up fails."""
        for _ in range(400):
            if wanted(self.seen):
                return
            await asyncio.sleep(0.025)
        pytest.fail(f"no notice {what}; seen {self.seen}")


@pytest.fixture
async def notices(database_url: str) -> AsyncIterator[Notices]:
    connection = await asyncpg.connect(database_url)
    collected = Notices()
    await connection.add_listener(CHANNEL, collected)
    try:
        yield collected
    finally:
        await connection.close()


async def _settled(db: asyncpg.Connection, notices: Notices) -> None:
    """Every notice committed so far has arrived (a marker sent after them arrives last)."""
    await db.execute("select pg_notify($1, 'marker')", CHANNEL)
    await notices.expect(lambda seen: "marker" in seen, "marker")
    notices.seen.clear()


async def test_every_write_to_the_checked_tables_notifies_its_subject_on_commit(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection, notices: Notices
) -> None:
    await create_request(
        svc.client, api, subject_id=SUBJECT, email=GUARDIAN, birth_date="2018-05-01"
    )
    await notices.expect(lambda seen: f"consent_check:{SUBJECT}" in seen, "for the insert")
    await granted_consent(svc, api, mailbox, subject_id="child-notify-2", email=GUARDIAN)
    await _settled(db, notices)

    for sql in (
        "update consents set end_reason = 'typed by hand' where subject_id = 'child-notify-2'",
        "update consent_requests set locale = 'sl' where subject_id = $1",
        "delete from consent_requests where subject_id = $1",
    ):
        args = (SUBJECT,) if "$1" in sql else ()
        await db.execute(sql, *args)
        subject = SUBJECT if args else "child-notify-2"
        await notices.expect(lambda seen, s=subject: seen == [f"consent_check:{s}"], sql)
        notices.seen.clear()

    # A change that does not commit tells nobody.
    rollback = db.transaction()
    await rollback.start()
    await db.execute("update consents set end_reason = 'rolled back'")
    await db.execute("update consent_requests set locale = 'en'")
    await rollback.rollback()
    await _settled(db, notices)
    assert notices.seen == []

    # A subject id changed in place (erasure-style rewrite): both subjects are told.
    await db.execute(
        "update consents set subject_id = 'child-notify-3' where subject_id = 'child-notify-2'"
    )
    await notices.expect(
        lambda seen: set(seen) == {"consent_check:child-notify-2", "consent_check:child-notify-3"},
        "for both subject ids",
    )
    notices.seen.clear()

    await db.execute("truncate consents, consent_requests cascade")
    await notices.expect(lambda seen: "consent_check" in seen, "for the truncate (everyone)")


async def test_every_table_the_check_reads_carries_the_notify_trigger(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    scanned: set[str] = set()
    for subject_id in (SUBJECT, "nobody-at-all"):
        async with db.transaction():
            await check_row(db, subject_id)
            rows = await db.fetch(
                "select relname from pg_stat_xact_user_tables"
                " where seq_scan + coalesce(idx_scan, 0) > 0"
            )
            scanned |= {row["relname"] for row in rows}
    assert scanned, "the check read no table at all?"
    assert scanned <= set(CHECK_TABLES), f"check reads {scanned}; CHECK_TABLES is {CHECK_TABLES}"

    triggered = await db.fetch(
        """
        select c.relname, t.tgtype
        from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_proc p on p.oid = t.tgfoid
        where p.proname = 'consent_check_changed' and not t.tgisinternal and t.tgenabled = 'O'
        """
    )
    # tgtype bits: 1 row, 4 insert, 8 delete, 16 update, 32 truncate.
    row_events = {row["relname"]: row["tgtype"] for row in triggered if row["tgtype"] & 1}
    for table in CHECK_TABLES:
        assert table in row_events, f"{table} has no notify trigger"
        assert row_events[table] & (4 | 8 | 16) == 4 | 8 | 16, f"{table} misses an event"
