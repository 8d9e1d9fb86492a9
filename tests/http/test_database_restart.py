"""A PostgreSQL restart while requests run: every answer is a result or a 503 (an HTML page on
guardian paths), never a 500; afterwards the LISTEN/NOTIFY listener is back and a revocation
notice evicts a cached API key again. A private cluster of its own is stopped and restarted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.clock import ManualClock
from service.db.api_keys import hash_api_key
from service.dev.pgcluster import LocalCluster
from service.http.api_key_auth import ApiKeyAuthenticator
from service.security.staff_tokens import mint_dev_token
from service.settings import load_settings
from tests.support.cli import run_cli
from tests.support.clusters import migrated_database, private_cluster
from tests.support.credentials import StaffKeys, bearer, make_api_key
from tests.support.problems import PROBLEM_JSON
from tests.support.service import serving

CONCURRENT_CLIENTS = 24


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    with private_cluster() as started:
        yield started


async def _until(predicate: Callable[[], bool], what: str) -> None:
    """Bounded wait (~15 s) for a background recovery; not a timing assertion."""
    for _ in range(300):
        if predicate():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"gave up waiting: {what}")


def _verdict(path: str, response: httpx.Response) -> str | None:
    """What is wrong with this answer during a restart, if anything."""
    guardian = path.startswith("/guardian/")
    expected = {404, 503} if guardian or "consent-requests" in path else {200, 503}
    if response.status_code not in expected:
        return f"{path}: {response.status_code} {response.text[:200]}"
    if response.status_code == 503:
        kind = "text/html" if guardian else PROBLEM_JSON
        if not response.headers.get("content-type", "").startswith(kind):
            return f"{path}: 503 as {response.headers.get('content-type')}"
        if "retry-after" not in response.headers:
            return f"{path}: 503 without Retry-After"
    return None


async def test_a_restart_under_load_answers_results_or_503_and_the_listener_recovers(
    cluster: LocalCluster,
    base_env: dict[str, str],
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    dsn = await migrated_database(cluster)
    connection = await asyncpg.connect(dsn)
    try:
        key = await make_api_key(connection, "consent:check", "consent:request")
    finally:
        await connection.close()
    staff_keys = StaffKeys(tmp_path)
    settings = load_settings({**base_env, **staff_keys.env(), "CONSENT_DATABASE_URL": dsn})
    app = create_app(settings, clock=clock)
    api = bearer(key)
    staff = bearer(mint_dev_token(settings, sub="alice", roles=["support"]))
    requests: list[tuple[str, dict[str, str]]] = [
        ("/v1/consents/check?subject_id=child-1&purpose=tutoring", api),
        (f"/v1/consent-requests/{uuid.uuid4()}", api),
        ("/v1/subjects/child-1/events", staff),
        (f"/guardian/{'x' * 43}", {}),
    ]

    async with serving(app) as http:
        await _until(lambda: app.state.listener.healthy, "the listener to connect")
        restarted = asyncio.Event()
        statuses: Counter[int] = Counter()
        wrong: list[str] = []

        async def keep_asking(offset: int) -> None:
            turn = offset
            while not restarted.is_set():
                path, headers = requests[turn % len(requests)]
                turn += 1
                response = await http.get(path, headers=headers)
                statuses[response.status_code] += 1
                if (problem := _verdict(path, response)) is not None:
                    wrong.append(problem)

        clients = [asyncio.create_task(keep_asking(n)) for n in range(CONCURRENT_CLIENTS)]
        await asyncio.sleep(0.2)  # requests in flight on live connections when the stop comes
        await asyncio.to_thread(cluster.stop)
        await asyncio.sleep(0.2)  # and while the server is gone
        await asyncio.to_thread(cluster.start)
        ready = 0
        for _ in range(100):
            ready = (await http.get("/readyz")).status_code
            if ready == 200:
                break
            await asyncio.sleep(0.1)
        restarted.set()
        await asyncio.gather(*clients)

        assert ready == 200
        assert not wrong, f"{len(wrong)} wrong answers of {statuses}:\n" + "\n".join(wrong[:20])
        assert statuses[503] > 0, f"the load did not meet the outage: {statuses}"

        # The listener reconnects on its own, and invalidation works through it again.
        listener = app.state.listener
        await _until(lambda: listener.healthy, "the listener to reconnect after the restart")
        authenticator: ApiKeyAuthenticator = app.state.authenticator
        check = requests[0][0]
        for _ in range(2):  # the first answer after a reconnect fills the cache
            assert (await http.get(check, headers=api)).status_code == 200
        assert hash_api_key(key) in authenticator._cache

        key_id = await _key_id(dsn, key)
        revoked = await run_cli("keys", "revoke", str(key_id), database_url=dsn)
        assert revoked.code == 0, revoked.stderr

        await _until(lambda: hash_api_key(key) not in authenticator._cache, "the revocation notice")
        refused = await http.get(check, headers=api)
        assert refused.status_code == 401, refused.text


async def _key_id(dsn: str, key: str) -> uuid.UUID:
    connection = await asyncpg.connect(dsn)
    try:
        key_id: uuid.UUID = await connection.fetchval(
            "select id from api_keys where key_hash = $1", hash_api_key(key)
        )
        return key_id
    finally:
        await connection.close()
