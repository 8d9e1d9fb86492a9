"""The service under test, driven over ASGI with its lifespan running.

- ``serving``: the app's lifespan and an httpx client talking to it (``asgi_client`` gives
  another client, with cookies of its own, to the same app).
- ``start_service``: the app with extra settings (staff, webhooks, ...), a client, and a worker
  on the same ManualClock; ``worker_for``: a worker (replica) with a pool of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import httpx
from litestar import Litestar

from service.app import create_app
from service.clock import Clock, ManualClock
from service.consent.runtime import Runtime
from service.security.staff_tokens import mint_dev_token
from service.settings import Settings, load_settings
from service.worker import Worker
from tests.support.credentials import bearer


@asynccontextmanager
async def running(app: Litestar) -> AsyncIterator[None]:
    """Run the app's lifespan in a task of its own (anyio scopes must exit where entered)."""
    started = asyncio.Event()
    stop = asyncio.Event()

    async def hold() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(hold())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    try:
        yield
    finally:
        stop.set()
        await task


def asgi_client(app: Litestar) -> httpx.AsyncClient:
    """A client with cookies of its own, talking to ``app`` over ASGI."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://consent.test")


@asynccontextmanager
async def serving(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app's lifespan running, and a client talking to it."""
    async with running(app), asgi_client(app) as http:
        yield http


@asynccontextmanager
async def worker_for(
    settings: Settings, clock: Clock, *, max_size: int = 4
) -> AsyncIterator[Worker]:
    """A worker (replica) with its own connection pool."""
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=max_size)
    assert pool is not None
    worker = Worker(Runtime(settings, clock), pool)
    try:
        yield worker
    finally:
        await worker.close()
        await pool.close()


@dataclass
class Service:
    app: Litestar
    settings: Settings
    runtime: Runtime
    client: httpx.AsyncClient
    worker: Worker
    pool: asyncpg.Pool
    clock: ManualClock

    def staff(self, *roles: str, sub: str = "alice") -> dict[str, str]:
        """Headers with a staff token minted like ``consent-service staff-token`` does."""
        return bearer(mint_dev_token(self.settings, sub=sub, roles=list(roles)))


@asynccontextmanager
async def start_service(
    base_env: dict[str, str], clock: ManualClock, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Service]:
    settings = load_settings({**base_env, **(extra_env or {})})
    app = create_app(settings, clock=clock)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=12)
    assert pool is not None
    worker = Worker(Runtime(settings, clock), pool)
    try:
        async with serving(app) as client:
            yield Service(
                app=app,
                settings=settings,
                runtime=app.state.runtime,
                client=client,
                worker=worker,
                pool=pool,
                clock=clock,
            )
    finally:
        await worker.close()
        await pool.close()


def browser(app: Litestar) -> httpx.AsyncClient:
    """Another client with cookies of its own, talking to the same running app."""
    return asgi_client(app)
