"""The connection type repositories accept: a plain connection or one borrowed from a pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    # Litestar evaluates handler annotations at run time and would validate a dependency
    # against them; the pool's proxy is not a Connection subclass, so stay opaque there.
    Connection = Any
