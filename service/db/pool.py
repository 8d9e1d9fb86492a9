"""The asyncpg pool: one per process, owned by the app's lifespan or the worker."""

from __future__ import annotations

import asyncpg

from service.settings import Settings

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


def pool_stats(pool: asyncpg.Pool) -> dict[str, int]:
    size = pool.get_size()
    idle = pool.get_idle_size()
    return {"size": size, "idle": idle, "in_use": size - idle, "max": pool.get_max_size()}
