"""The LISTEN/NOTIFY listener keeps listening whatever breaks its connection, including an
error the driver reports in its own way (``InternalClientError`` during a server restart)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from asyncpg.exceptions import InternalClientError

from service.db import invalidation
from service.db.invalidation import InvalidationListener, publish


async def _until(predicate: Callable[[], bool], what: str) -> None:
    """Bounded wait (~15 s) for the listener's own retry; not a timing assertion."""
    for _ in range(300):
        if predicate():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"gave up waiting: {what}")


async def test_the_listener_survives_a_driver_state_error_and_listens_again(
    database_url: str, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_connect = asyncpg.connect
    failed: list[str] = []

    async def connect_failing_once(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        if not failed:
            failed.append("once")
            raise InternalClientError("cannot switch to state 12; another operation is in progress")
        return await real_connect(*args, **kwargs)

    monkeypatch.setattr(invalidation.asyncpg, "connect", connect_failing_once)
    listener = InvalidationListener(database_url)
    seen: list[str] = []
    listener.subscribe(seen.append)
    listener.start()
    try:
        await _until(lambda: listener.healthy, "the listener to connect after the error")
        assert failed == ["once"]
        await publish(db, "api_keys")
        await _until(lambda: "api_keys" in seen, "the notice")
    finally:
        await listener.stop()
