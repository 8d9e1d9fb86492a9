"""A private PostgreSQL cluster a test may stop and restart, with a migrated database on it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from service.db.migrate import migrate
from service.dev.pgcluster import LocalCluster
from service.settings import REPOSITORY_SCHEMAS_DIR


@contextmanager
def private_cluster() -> Iterator[LocalCluster]:
    """A started cluster of its own, destroyed afterwards.

    Under /tmp (mkdtemp), never tmp_path: as root the cluster runs as ``postgres``, which cannot
    traverse /root.
    """
    directory = Path(tempfile.mkdtemp(prefix="consent-restart-pg-"))
    local = LocalCluster(directory)
    try:
        local.start()
        yield local
    finally:
        local.destroy()
        shutil.rmtree(directory, ignore_errors=True)


async def migrated_database(cluster: LocalCluster, name: str = "consent") -> str:
    """Create ``name`` on ``cluster``, apply every migration, and return its DSN."""
    admin = await asyncpg.connect(cluster.admin_dsn)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    dsn = cluster.dsn(name)
    await migrate(dsn, REPOSITORY_SCHEMAS_DIR)
    return dsn
