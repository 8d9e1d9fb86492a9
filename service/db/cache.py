"""A process-local cache of database reads that cannot stay wrong for long.

Four rules keep it honest:

- an invalidation notice (``service.db.invalidation``) of its topic drops every entry at once,
  and a notice ``topic:key`` drops that key's entry, so a change reaches every replica as soon
  as its transaction commits;
- nothing is served or stored while the listener is down, since a notice could be missed then
  (the listener empties every cache when it connects again);
- every entry expires after a TTL (``CONSENT_CACHE_TTL``), which bounds how long a change that
  sent no notice at all can go unseen;
- a load that overlaps an invalidation of its key (or of everything) is answered but not
  cached: its row may predate the change.

It holds at most ``limit`` entries and evicts the least recently used first.
Time comes from the service's :class:`~service.clock.Clock`; an entry stored "in the future"
(the wall clock stepped back) counts as expired, so a clock step never lengthens an entry's life.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from service.clock import Clock
from service.db.invalidation import ALL_TOPICS, InvalidationListener
from service.metrics import CacheStats

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

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
        key_of_notice: Callable[[str], K] | None = None,
        stats: CacheStats | None = None,
    ) -> None:
        self._topic = topic
        self._ttl = ttl
        self._clock = clock
        self._listener = listener
        self._limit = limit
        # Without it a notice naming one key empties the whole cache (never too little).
        self._key_of_notice = key_of_notice
        self._stats = stats
        self._entries: OrderedDict[K, tuple[datetime, V]] = OrderedDict()
        self._generation = 0
        self._emptied_at = 0
        # Only keys with a load in flight need to remember when they were last invalidated.
        self._loading: dict[K, int] = {}
        self._invalidated_at: dict[K, int] = {}
        if listener is not None:
            listener.subscribe(self.invalidate)

    @property
    def enabled(self) -> bool:
        """Whether entries may be served and stored now."""
        listening = self._listener is not None and self._listener.healthy
        return listening and self._ttl > timedelta(0) and self._limit > 0

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def invalidate(self, notice: str) -> None:
        """Apply a notice: ``*`` or this topic drop every entry, ``topic:key`` that key's."""
        topic, named, key_text = notice.partition(":")
        if topic == ALL_TOPICS or (topic == self._topic and not named):
            self._empty()
        elif topic == self._topic:
            if self._key_of_notice is None:
                self._empty()
            else:
                self.invalidate_key(self._key_of_notice(key_text))

    def invalidate_key(self, key: K) -> None:
        self._generation += 1
        if key in self._loading:
            self._invalidated_at[key] = self._generation
        self._entries.pop(key, None)
        self._changed()

    def _empty(self) -> None:
        self._generation += 1
        self._emptied_at = self._generation
        self._entries.clear()
        self._changed()

    def _changed(self) -> None:
        if self._stats is not None:
            self._stats.invalidated(len(self._entries))

    def get(self, key: K) -> V | None:
        """The live entry for ``key``, or None (expired entries are dropped on the way)."""
        if not self.enabled:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, value = entry
        if not stored_at <= self._clock.now() < stored_at + self._ttl:
            del self._entries[key]
            if self._stats is not None:
                self._stats.resized(len(self._entries))
            return None
        self._entries.move_to_end(key)
        return value

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The cached value for ``key``, or ``load()``'s, kept unless it is None (for callers
        to whom absence may end at any moment; others cache an explicit "none" value)."""
        cached = self.get(key)
        if cached is not None:
            if self._stats is not None:
                self._stats.hit()
            return cached
        if self._stats is not None:
            self._stats.miss()
        started = self._generation
        self._loading[key] = self._loading.get(key, 0) + 1
        try:
            value = await load()
        finally:
            invalidated_at = self._invalidated_at.get(key, 0)
            if self._loading[key] == 1:
                del self._loading[key]
                self._invalidated_at.pop(key, None)
            else:
                self._loading[key] -= 1
        # A notice that arrived while we loaded must not be undone by caching the old row.
        fresh = self._emptied_at <= started and invalidated_at <= started
        if value is not None and fresh and self.enabled:
            self._store(key, value)
        return value

    def _store(self, key: K, value: V) -> None:
        self._entries[key] = (self._clock.now(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)
        if self._stats is not None:
            self._stats.resized(len(self._entries))
