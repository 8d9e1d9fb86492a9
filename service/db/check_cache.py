"""Each subject's check state, cached per process: the row ``consents.check_row`` reads, from
which ``service.consent.check`` answers any purpose at any moment.

The row holds expiry instants, not statuses that depend on time, so a lapse or a link's expiry
needs no notice: the answer compares them with ``now`` every time. A subject without any
record is cached too (a row of nulls); the insert that gives it one invalidates that entry.
Every other change arrives as a notice ``consent_check:<subject_id>``, sent by the triggers of
``schemas/0007_check_cache_notify.sql`` (and ``0010_restriction.sql``) on every table
``check_row`` reads: whatever writes a row, the notice cannot be forgotten.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import asyncpg

from service.clock import Clock
from service.db.cache import InvalidatedCache
from service.db.consents import CheckRow, check_row
from service.db.invalidation import InvalidationListener
from service.db.pool import borrow
from service.metrics import CacheStats

CHECK_TOPIC = "consent_check"
# The tables check_row reads; each must carry the notify trigger (a test compares).
CHECK_TABLES = ("consents", "consent_requests", "subject_restrictions")


class CheckRows:
    def __init__(
        self,
        pool: asyncpg.Pool,
        listener: InvalidationListener | None,
        *,
        ttl: timedelta,
        clock: Clock,
        size: int,
        stats: CacheStats | None = None,
        pseudonym: Callable[[str], str] | None = None,
    ) -> None:
        self._pool = pool
        # what records purged after retention keep instead of the subject id
        self._pseudonym = pseudonym
        self.cache: InvalidatedCache[str, CheckRow] = InvalidatedCache(
            topic=CHECK_TOPIC,
            ttl=ttl,
            clock=clock,
            listener=listener,
            limit=size,
            key_of_notice=str,
            stats=stats,
        )

    async def read(self, subject_id: str) -> CheckRow:
        async def load() -> CheckRow:
            # The hot path: borrow a connection for the one query, not for the whole request.
            async with borrow(self._pool) as connection:
                pseudonym = self._pseudonym(subject_id) if self._pseudonym else None
                return await check_row(connection, subject_id, pseudonym)

        row = await self.cache.get_or_load(subject_id, load)
        assert row is not None  # check_row always answers, with a row of nulls at least
        return row
