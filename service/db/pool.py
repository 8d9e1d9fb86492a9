"""The asyncpg pool: one per process, owned by the app's lifespan or the worker."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from service.db.connection import Connection
from service.db.errors import DATABASE_UNAVAILABLE_ERRORS
from service.settings import Settings

CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 15.0

logger = logging.getLogger("service.db.pool")


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


@asynccontextmanager
async def borrow(pool: asyncpg.Pool) -> AsyncIterator[Connection]:
    """A connection from ``pool`` for the block, given back afterwards.

    A connection that failed mid-operation (the server went away, the driver lost track of its
    state) is terminated instead of being handed to the next request. Giving a connection back
    resets it; if that fails the driver has already discarded it, and the block's own outcome
    (its result or its error) is what the caller sees, never the reset's error.
    """
    connection = await pool.acquire(timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        yield connection
    except DATABASE_UNAVAILABLE_ERRORS:
        # InterfaceError: the driver noticed first and has already given the connection up.
        with contextlib.suppress(asyncpg.InterfaceError):
            connection.terminate()
        raise
    finally:
        try:
            await pool.release(connection)
        except Exception as exc:  # the connection is gone either way
            logger.warning("discarded a connection that could not be reset: %s", type(exc).__name__)


def pool_stats(pool: asyncpg.Pool) -> dict[str, int]:
    size = pool.get_size()
    idle = pool.get_idle_size()
    return {"size": size, "idle": idle, "in_use": size - idle, "max": pool.get_max_size()}
