"""Cross-replica cache invalidation through PostgreSQL LISTEN/NOTIFY.

A dedicated connection listens on one channel. While it is down, ``healthy`` is false and
caches must not be trusted: a missed notification could keep a revoked API key alive.

A notice is a topic (``api_keys``: drop all of that cache), ``topic:key`` (drop one entry; the
check cache's are sent by triggers, ``schemas/0007_check_cache_notify.sql``) or ``*`` (drop
everything, sent by the listener itself whenever it (re)connects or is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from service.db.connection import Connection

CHANNEL = "consent_cache"
ALL_TOPICS = "*"
RECONNECT_SECONDS = 2.0
SYNC_TIMEOUT_SECONDS = 2.0

logger = logging.getLogger("service.db.invalidation")


async def publish(connection: Connection, topic: str) -> None:
    """Tell every replica to drop cached entries of ``topic`` (delivered at commit)."""
    await connection.execute("select pg_notify($1, $2)", CHANNEL, topic)


class InvalidationListener:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._callbacks: list[Callable[[str], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._connection: Connection | None = None
        self._lost = asyncio.Event()
        # One query at a time on the listening connection (the liveness probe, ``sync``).
        self._querying = asyncio.Lock()
        # Besides cancelling: a cancellation that lands as a connect attempt fails can be lost
        # inside the driver's timeout handling, and the loop would run on for ever.
        self._stopping = False
        self.healthy = False

    def subscribe(self, callback: Callable[[str], None]) -> None:
        self._callbacks.append(callback)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cache-invalidation-listener")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listening connection, while connected."""
        if self._connection is None or self._connection.is_closed():
            return None
        return self._connection.get_server_pid()

    async def sync(self) -> None:
        """Return once every notice committed before this call has been dispatched.

        The server sends pending notices to a listening session before the answer to its next
        query, and the driver dispatches them before it wakes the query's caller; so one round
        trip on the listening connection is a barrier. If it fails, every cache is emptied.
        """
        connection = self._connection
        if not self.healthy or connection is None:
            return  # caches are off anyway
        try:
            async with self._querying:
                await connection.fetchval("select 1", timeout=SYNC_TIMEOUT_SECONDS)
        except Exception as exc:  # whatever went wrong, forget everything rather than guess
            logger.warning("cache invalidation sync failed: %s", type(exc).__name__)
            self._dispatch(ALL_TOPICS)
            return
        await asyncio.sleep(0)  # let the dispatch callbacks scheduled with the answer run

    def _dispatch(self, topic: str) -> None:
        for callback in self._callbacks:
            callback(topic)

    def _on_notification(self, _c: object, _pid: int, _channel: str, payload: object) -> None:
        self._dispatch(str(payload))

    def _on_termination(self, _c: object) -> None:
        self.healthy = False
        self._dispatch(ALL_TOPICS)
        self._lost.set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                self._connection = await asyncpg.connect(self._dsn, timeout=5)
                self._lost.clear()
                self._connection.add_termination_listener(self._on_termination)
                await self._connection.add_listener(CHANNEL, self._on_notification)
                # Anything cached before we listened may be stale.
                self._dispatch(ALL_TOPICS)
                self.healthy = True
                await self._watch()
            except Exception as exc:  # whatever broke it, listen again
                # A failure the driver reports in an unexpected way (InternalClientError during a
                # server restart) must not end the listener for good: caches would stay off.
                logger.warning("cache invalidation listener down: %s", type(exc).__name__)
            self.healthy = False
            self._dispatch(ALL_TOPICS)
            if self._connection is not None and not self._connection.is_closed():
                self._connection.terminate()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _watch(self) -> None:
        # Termination callbacks do not fire for a server that vanishes silently, so probe too.
        assert self._connection is not None
        while not self._lost.is_set() and not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), timeout=RECONNECT_SECONDS * 5)
            if not self._lost.is_set():
                async with self._querying:
                    await self._connection.fetchval("select 1", timeout=5)
