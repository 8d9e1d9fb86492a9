"""Fixtures of the cache tests: a connected invalidation listener and a clock they move."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from service.clock import ManualClock
from service.db.invalidation import InvalidationListener


@pytest.fixture
async def listener(database_url: str) -> AsyncIterator[InvalidationListener]:
    started = InvalidationListener(database_url)
    started.start()
    try:
        for _ in range(200):
            if started.healthy:
                break
            await asyncio.sleep(0.025)
        assert started.healthy, "the invalidation listener did not connect"
        yield started
    finally:
        await started.stop()


@pytest.fixture
def moment() -> ManualClock:
    return ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
