"""The per-request connection, borrowed from the app's pool for the handler's duration."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import asyncpg
from litestar.datastructures import State
from litestar.di import NamedDependency

from service.db.connection import Connection
from service.db.pool import borrow


async def provide_connection(state: State) -> AsyncGenerator[Connection, None]:
    pool: asyncpg.Pool = state.pool
    async with borrow(pool) as connection:
        yield connection


Db = NamedDependency[Connection]
"""Handler parameter type for the request's connection (provided as ``db``)."""
