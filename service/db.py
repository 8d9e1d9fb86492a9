"""The asyncpg pool owned by the app's lifespan, and the per-request connection dependency."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import asyncpg
from litestar.datastructures import State
from litestar.di import NamedDependency

from service.settings import Settings
from service.sql import Connection

CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 15.0


async def create_pool(settings: Settings) -> asyncpg.Pool:
    # min_size=0: the app starts (and /readyz reports why it is not ready) even while the
    # database is still unreachable; connections are opened on demand and kept afterwards.
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=0,
        max_size=settings.db_pool_max,
        timeout=CONNECT_TIMEOUT_SECONDS,
        command_timeout=COMMAND_TIMEOUT_SECONDS,
        max_inactive_connection_lifetime=300,
    )
    assert pool is not None
    return pool


async def provide_connection(state: State) -> AsyncGenerator[Connection, None]:
    pool: asyncpg.Pool = state.pool
    async with pool.acquire(timeout=CONNECT_TIMEOUT_SECONDS) as connection:
        yield connection


def pool_stats(pool: asyncpg.Pool) -> dict[str, int]:
    size = pool.get_size()
    idle = pool.get_idle_size()
    return {"size": size, "idle": idle, "in_use": size - idle, "max": pool.get_max_size()}


Db = NamedDependency[Connection]
"""Handler parameter type for the request's connection (provided as ``db``)."""
