"""A database failure the driver reports as its own state error (asyncpg's
``InternalClientError``, seen during a PostgreSQL restart) is a 503 like any other outage: a
problem on the API, a page on guardian paths; and the connection it broke is discarded rather
than handed to the next request."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asyncpg.exceptions import InternalClientError
from litestar import Controller, get

from service.app import create_app
from service.clock import ManualClock
from service.http.dependencies import Db
from service.http.problems import guardian_exception_handlers
from service.settings import load_settings
from tests.support.problems import assert_problem
from tests.support.service import serving

STATE_ERROR = "cannot switch to state 12; another operation is in progress"
backends: list[int] = []


@get("/test/broken-mid-query", include_in_schema=False)
async def broken_mid_query(db: Db) -> None:
    backends.append(await db.fetchval("select pg_backend_pid()"))
    raise InternalClientError(STATE_ERROR)


@get("/test/backend", include_in_schema=False)
async def backend(db: Db) -> int:
    pid: int = await db.fetchval("select pg_backend_pid()")
    return pid


class BrokenGuardianPage(Controller):
    """Answers errors like the guardian controller does, with its handler table."""

    path = "/test/guardian"
    exception_handlers = guardian_exception_handlers()

    @get("/page", include_in_schema=False)
    async def page(self, db: Db) -> None:
        await db.fetchval("select 1")
        raise InternalClientError(STATE_ERROR)


@pytest.fixture
async def one_connection_client(
    base_env: dict[str, str], clock: ManualClock
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a pool of one connection, so a reused connection cannot go unnoticed."""
    settings = load_settings({**base_env, "CONSENT_DB_POOL_MAX": "1"})
    app = create_app(
        settings,
        clock=clock,
        extra_routes=[broken_mid_query, backend, BrokenGuardianPage],
    )
    async with serving(app) as http:
        yield http


async def test_a_driver_state_error_is_a_503_problem_and_its_connection_is_discarded(
    one_connection_client: httpx.AsyncClient,
) -> None:
    backends.clear()
    response = await one_connection_client.get("/test/broken-mid-query")

    problem = assert_problem(response, 503)
    assert "database" in problem["detail"]
    assert int(response.headers["retry-after"]) > 0
    next_backend = await one_connection_client.get("/test/backend")
    assert next_backend.status_code == 200, next_backend.text
    assert backends
    assert next_backend.json() != backends[0], "the broken connection was handed out again"


async def test_a_driver_state_error_on_a_guardian_page_is_the_503_page(
    one_connection_client: httpx.AsyncClient,
) -> None:
    response = await one_connection_client.get(
        "/test/guardian/page", headers={"Accept-Language": "sl"}
    )

    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert '<html lang="sl">' in response.text
    assert int(response.headers["retry-after"]) > 0
