"""Throwaway databases on the test cluster: created (optionally from a template), then dropped."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at ``database`` instead."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@asynccontextmanager
async def scratch_database(
    admin_dsn: str, prefix: str, *, template: str | None = None
) -> AsyncIterator[str]:
    """A new database named ``prefix`` plus a random suffix (from ``template`` if given);
    yields its name and drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    copy_of = f' template "{template}"' if template is not None else ""
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'create database "{name}"{copy_of}')
    await admin.close()
    try:
        yield name
    finally:
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()
