"""Which exceptions mean "the database cannot be reached" rather than "the query was wrong"."""

from __future__ import annotations

import asyncpg

DATABASE_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    # The driver's own state machine out of step with a connection the server dropped mid-way
    # ("cannot switch to state 12; another operation is in progress"): the connection is broken.
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.ConnectionFailureError,
)

DATABASE_ERRORS: tuple[type[Exception], ...] = (*DATABASE_UNAVAILABLE_ERRORS, asyncpg.PostgresError)
