"""Databases of a PostgreSQL cluster, created by ``dev`` in its private cluster."""

from __future__ import annotations

import asyncpg


async def ensure_database(admin_dsn: str, name: str) -> None:
    """Create the database ``name`` unless the cluster already has it."""
    connection = await asyncpg.connect(admin_dsn)
    try:
        exists = await connection.fetchval("select 1 from pg_database where datname = $1", name)
        if not exists:
            quoted = name.replace('"', '""')
            await connection.execute(f'create database "{quoted}"')
    finally:
        await connection.close()
