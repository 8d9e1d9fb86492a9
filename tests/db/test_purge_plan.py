"""The consents' retention purge can be served by its partial index, in ``ended_at`` order: the
query names exactly the statuses the index holds, so the planner may walk the index and stop
after the batch instead of reading and sorting every consent (and hash-joining every request),
which at millions of rows is what made the purge grow with history (``make bench-scale``).

Sequential scans are switched off for the statement, so the plan shows whether the index can
serve the query at all, whatever the (tiny) table sizes here would favour.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from service.db import consents


class Rollback(Exception):
    pass


async def test_the_purge_walks_its_partial_index(db: asyncpg.Connection) -> None:
    plans: list[str] = []
    db.add_log_listener(lambda _connection, message: plans.append(message.message))
    await db.execute("load 'auto_explain'")
    await db.execute("set auto_explain.log_min_duration = 0")
    await db.execute("set auto_explain.log_level = notice")
    await db.execute("set enable_seqscan = off")
    now = datetime.now(UTC)
    try:
        async with db.transaction():
            await consents.purge_ended(
                db,
                now=now,
                ended_before=now - timedelta(days=90),
                expired_before=now - timedelta(days=30),
                limit=100,
            )
            raise Rollback
    except Rollback:
        pass
    finally:
        await db.execute("reset enable_seqscan")
        await db.execute("set auto_explain.log_min_duration = -1")
    [purge] = [plan for plan in plans if "purged_at = $1" in plan]
    assert "Index Scan using consents_ended_unpurged on consents" in purge, purge
    assert "Sort" not in purge.split("Limit", 1)[1], purge
    assert "Seq Scan" not in purge, purge
