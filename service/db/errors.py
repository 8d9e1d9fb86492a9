"""Which exceptions mean "the database cannot be reached" rather than "the query was wrong"."""

from __future__ import annotations

import asyncpg

DATABASE_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.ConnectionFailureError,
)

DATABASE_ERRORS: tuple[type[Exception], ...] = (*DATABASE_UNAVAILABLE_ERRORS, asyncpg.PostgresError)
