"""The invalidated cache on its own: entries expire after the TTL (by the injected clock, also
when the clock steps back), absence is never cached, a notice of its topic empties it, and
nothing is cached while the listener is down."""

from __future__ import annotations

from datetime import timedelta

from service.clock import ManualClock
from service.db.cache import InvalidatedCache
from service.db.invalidation import InvalidationListener

TTL = timedelta(seconds=30)


class Loads:
    """A load function that counts its calls and returns what it is told."""

    def __init__(self, value: str | None) -> None:
        self.value = value
        self.calls = 0

    async def __call__(self) -> str | None:
        self.calls += 1
        return self.value


def cache_for(
    listener: InvalidationListener | None, clock: ManualClock, ttl: timedelta = TTL
) -> InvalidatedCache[str, str]:
    return InvalidatedCache(topic="things", ttl=ttl, clock=clock, listener=listener)


async def test_an_entry_is_served_until_its_ttl_and_loaded_again_after(
    listener: InvalidationListener, moment: ManualClock
) -> None:
    cache = cache_for(listener, moment)
    load = Loads("v1")
    assert await cache.get_or_load("k", load) == "v1"
    moment.advance(TTL - timedelta(microseconds=1))
    load.value = "v2"
    assert await cache.get_or_load("k", load) == "v1"
    assert load.calls == 1

    moment.advance(timedelta(microseconds=1))
    assert await cache.get_or_load("k", load) == "v2"
    assert load.calls == 2


async def test_a_clock_stepping_back_expires_the_entry(
    listener: InvalidationListener, moment: ManualClock
) -> None:
    cache = cache_for(listener, moment)
    load = Loads("v1")
    await cache.get_or_load("k", load)
    moment.advance(-timedelta(hours=1))
    load.value = "v2"
    assert await cache.get_or_load("k", load) == "v2"


async def test_absence_is_never_cached(listener: InvalidationListener, moment: ManualClock) -> None:
    cache = cache_for(listener, moment)
    load = Loads(None)
    assert await cache.get_or_load("k", load) is None
    load.value = "appeared"
    assert await cache.get_or_load("k", load) == "appeared"


async def test_a_notice_of_its_topic_empties_it_and_others_do_not(
    listener: InvalidationListener, moment: ManualClock
) -> None:
    cache = cache_for(listener, moment)
    await cache.get_or_load("k", Loads("v1"))
    cache.invalidate("other-things")
    assert "k" in cache
    cache.invalidate("things")
    assert "k" not in cache
    await cache.get_or_load("k", Loads("v1"))
    cache.invalidate("*")
    assert "k" not in cache


async def test_nothing_is_cached_without_a_listener_or_with_a_zero_ttl(
    listener: InvalidationListener, moment: ManualClock
) -> None:
    for cache in (cache_for(None, moment), cache_for(listener, moment, timedelta(0))):
        load = Loads("v1")
        await cache.get_or_load("k", load)
        await cache.get_or_load("k", load)
        assert load.calls == 2
        assert "k" not in cache
