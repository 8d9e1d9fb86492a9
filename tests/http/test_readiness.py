"""Readiness and the database going away: a private cluster of its own, stopped and restarted."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.clock import ManualClock
from service.db.migrate import load_migrations, migrate
from service.dev.pgcluster import LocalCluster
from service.settings import REPOSITORY_SCHEMAS_DIR, load_settings
from tests.support.credentials import make_api_key
from tests.support.service import serving

PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    # Under /tmp (mkdtemp), never tmp_path: as root the cluster runs as ``postgres``, which
    # cannot traverse /root.
    directory = Path(tempfile.mkdtemp(prefix="consent-readiness-pg-"))
    local = LocalCluster(directory)
    try:
        local.start()
        yield local
    finally:
        local.destroy()
        shutil.rmtree(directory, ignore_errors=True)


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


async def poll_status(http: httpx.AsyncClient, path: str, want: int, **kwargs: object) -> int:
    """Ask up to ~5 s (bounded, not a timing assertion) until ``path`` answers ``want``."""
    status = 0
    for _ in range(50):
        status = (await http.get(path, **kwargs)).status_code  # type: ignore[arg-type]
        if status == want:
            break
        await asyncio.sleep(0.1)
    return status


async def test_database_outage_and_recovery(
    cluster: LocalCluster,
    base_env: dict[str, str],
    clock: ManualClock,
) -> None:
    admin = await asyncpg.connect(cluster.admin_dsn)
    await admin.execute("create database consent")
    await admin.close()
    dsn = cluster.dsn("consent")
    await migrate(dsn, REPOSITORY_SCHEMAS_DIR)
    connection = await asyncpg.connect(dsn)
    try:
        key = await make_api_key(connection, "consent:check")
    finally:
        await connection.close()
    auth = {"Authorization": f"Bearer {key}"}
    check = {"subject_id": "child-1", "purpose": "tutoring"}

    settings = load_settings({**base_env, "CONSENT_DATABASE_URL": dsn})
    app = create_app(settings, clock=clock)
    async with serving(app) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready"}
        answer = await http.get("/v1/consents/check", params=check, headers=auth)
        assert answer.status_code == 200, answer.text
        assert answer.json()["allowed"] is False  # the key works (and may now be cached)

        cluster.stop()

        down = await http.get("/readyz")
        body = assert_problem(down, 503)
        assert "database" in str(body["detail"]).lower()
        assert int(down.headers["retry-after"]) > 0

        assert (await http.get("/healthz")).status_code == 200, "liveness does not need the DB"

        # Until this replica notices its listener is gone, it may answer the check from its
        # cache (nothing can change while the database is down); from then on it reads.
        for _ in range(200):
            if not app.state.listener.healthy:
                break
            await asyncio.sleep(0.05)
        assert not app.state.listener.healthy, "the listener never noticed the outage"
        for _ in range(3):  # pooled connections died with the server: every attempt fails
            unknown = await http.get("/v1/consents/check", params=check, headers=auth)
            assert unknown.status_code == 503, unknown.text
            assert unknown.headers["content-type"].startswith(PROBLEM_JSON)
            assert "allowed" not in unknown.json()
            assert "retry-after" in unknown.headers

        port = cluster.port
        cluster.start()  # a restarted cluster comes back where clients expect it
        assert cluster.port == port

        assert await poll_status(http, "/readyz", 200) == 200
        assert await poll_status(http, "/v1/consents/check", 200, params=check, headers=auth) == 200
        again = await http.get("/v1/consents/check", params=check, headers=auth)
        assert again.json()["status"] == "none"
        assert again.json()["allowed"] is False


async def test_schema_behind_is_not_ready(
    empty_database_url: str, base_env: dict[str, str], clock: ManualClock
) -> None:
    settings = load_settings({**base_env, "CONSENT_DATABASE_URL": empty_database_url})
    app = create_app(settings, clock=clock)
    versions = [migration.version for migration in load_migrations(REPOSITORY_SCHEMAS_DIR)]
    async with serving(app) as http:
        behind = await http.get("/readyz")
        body = assert_problem(behind, 503)
        detail = str(body["detail"])
        assert all(version in detail for version in versions), detail
        assert "migrate" in detail  # tells the operator what to do
        assert "retry-after" in behind.headers
        assert (await http.get("/healthz")).status_code == 200

        await migrate(empty_database_url, REPOSITORY_SCHEMAS_DIR)

        current = await http.get("/readyz")
        assert current.status_code == 200, current.text
