"""The invalidated cache's per-key notices, its LRU bound and its overlapping loads: a notice
``topic:key`` drops that key only (or, for a cache that cannot read keys, everything), the
least recently used entry leaves first, and a load overlapping its key's invalidation is not
kept even when another load of the same key is still in flight."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from service.clock import ManualClock
from service.db.cache import InvalidatedCache
from service.db.invalidation import InvalidationListener

TTL = timedelta(seconds=30)


async def _value(text: str) -> str:
    return text


def keyed(
    listener: InvalidationListener, clock: ManualClock, limit: int = 10
) -> InvalidatedCache[str, str]:
    return InvalidatedCache(
        topic="things", ttl=TTL, clock=clock, listener=listener, limit=limit, key_of_notice=str
    )


async def test_a_keyed_notice_drops_only_its_key(
    listener: InvalidationListener, moment: ManualClock
) -> None:
    cache = keyed(listener, moment)
    for key in ("a", "b", "a:b"):
        await cache.get_or_load(key, lambda key=key: _value(key))
    cache.invalidate("things:a")
    assert "a" not in cache
    assert "b" in cache
    cache.invalidate("other:b")
    assert "b" in cache
    cache.invalidate("things:a:b")  # the key is everything after the first colon
    assert "a:b" not in cache
    assert "b" in cache


async def test_without_a_key_reader_a_keyed_notice_empties_the_cache(
    listener: InvalidationListener, moment: ManualClock
) -> None:
    cache: InvalidatedCache[str, str] = InvalidatedCache(
        topic="things", ttl=TTL, clock=moment, listener=listener
    )
    await cache.get_or_load("a", lambda: _value("a"))
    await cache.get_or_load("b", lambda: _value("b"))
    cache.invalidate("things:a")
    assert len(cache) == 0


async def test_the_least_recently_used_entry_leaves_first(
    listener: InvalidationListener, moment: ManualClock
) -> None:
    cache = keyed(listener, moment, limit=2)
    await cache.get_or_load("a", lambda: _value("a"))
    await cache.get_or_load("b", lambda: _value("b"))
    assert cache.get("a") == "a"  # a is now the more recently used
    await cache.get_or_load("c", lambda: _value("c"))
    assert len(cache) == 2
    assert "b" not in cache
    assert cache.get("a") == "a"
    assert cache.get("c") == "c"


async def test_overlapping_loads_of_one_key_neither_keeps_a_row_older_than_the_notice(
    listener: InvalidationListener, moment: ManualClock
) -> None:
    cache = keyed(listener, moment)
    first_may_finish = asyncio.Event()
    second_may_finish = asyncio.Event()

    async def waits_for(event: asyncio.Event, value: str) -> str:
        await event.wait()
        return value

    first = asyncio.create_task(cache.get_or_load("k", lambda: waits_for(first_may_finish, "old")))
    await asyncio.sleep(0)
    second = asyncio.create_task(
        cache.get_or_load("k", lambda: waits_for(second_may_finish, "old"))
    )
    await asyncio.sleep(0)
    cache.invalidate("things:k")  # both loads started before it
    first_may_finish.set()
    assert await first == "old"
    assert "k" not in cache
    second_may_finish.set()
    assert await second == "old"
    assert "k" not in cache

    # A load that starts after the notice is kept.
    assert await cache.get_or_load("k", lambda: _value("new")) == "new"
    assert cache.get("k") == "new"


async def test_a_size_of_zero_keeps_nothing(
    listener: InvalidationListener, moment: ManualClock
) -> None:
    cache = keyed(listener, moment, limit=0)
    assert not cache.enabled
    await cache.get_or_load("a", lambda: _value("a"))
    assert len(cache) == 0
