"""A process-local cache of database reads that cannot stay wrong for long.

Three rules keep it honest:

- an invalidation notice of its topic (``service.db.invalidation``) drops every entry at once,
  so a change made through the service reaches every replica immediately;
- nothing is cached while the listener is down, since a notice could be missed then;
- every entry expires after a TTL (``CONSENT_CACHE_TTL``), which bounds how long a change that
  sent no notice at all (an UPDATE typed into ``psql``, a notice lost while this replica's
  listener was reconnecting) can go unseen.

A load that overlaps an invalidation is answered but not cached: its row may predate the change.
Time comes from the service's :class:`~service.clock.Clock`; an entry stored "in the future"
(the wall clock stepped back) counts as expired, so a clock step never lengthens an entry's life.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from service.clock import Clock
from service.db.invalidation import InvalidationListener

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

ALL_TOPICS = "*"
DEFAULT_ENTRY_LIMIT = 10_000


class InvalidatedCache(Generic[K, V]):
    def __init__(
        self,
        *,
        topic: str,
        ttl: timedelta,
        clock: Clock,
        listener: InvalidationListener | None,
        limit: int = DEFAULT_ENTRY_LIMIT,
    ) -> None:
        self._topic = topic
        self._ttl = ttl
        self._clock = clock
        self._listener = listener
        self._limit = limit
        self._entries: dict[K, tuple[datetime, V]] = {}
        self._generation = 0
        if listener is not None:
            listener.subscribe(self.invalidate)

    @property
    def enabled(self) -> bool:
        """Whether entries may be served and stored now."""
        listening = self._listener is not None and self._listener.healthy
        return listening and self._ttl > timedelta(0)

    def invalidate(self, topic: str) -> None:
        """Drop every entry if ``topic`` is this cache's (or all topics)."""
        if topic in {ALL_TOPICS, self._topic}:
            self._generation += 1
            self._entries.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: K) -> V | None:
        """The live entry for ``key``, or None (expired entries are dropped on the way)."""
        if not self.enabled:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, value = entry
        if not stored_at <= self._clock.now() < stored_at + self._ttl:
            self._entries.pop(key, None)
            return None
        return value

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The cached value for ``key``, or ``load()``'s, kept unless it is None (an absent row
        may appear at any moment, so absence is never cached)."""
        cached = self.get(key)
        if cached is not None:
            return cached
        generation = self._generation
        value = await load()
        # A notice that arrived while we loaded must not be undone by caching the old row.
        if value is not None and self.enabled and generation == self._generation:
            if len(self._entries) >= self._limit:
                self._entries.clear()
            self._entries[key] = (self._clock.now(), value)
        return value
