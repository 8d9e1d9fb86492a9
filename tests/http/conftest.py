"""Fixtures of the real-browser tests: the app on a loopback port, its worker, an operator
client over HTTP, and one Chromium per module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest
import pytest_asyncio

from service.app import create_app
from service.clock import SystemClock
from service.dev.identity_provider import DevIdentityProvider
from service.dev.pgcluster import free_port
from service.settings import Settings, load_settings
from service.worker import Worker
from tests.support.browser import chromium, live_server
from tests.support.console import (
    LOOPBACK_CALLBACK,
    console_settings,
    identity_provider_unavailable,
)
from tests.support.credentials import make_api_key
from tests.support.service import worker_for

if TYPE_CHECKING:
    from playwright.async_api import Browser


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def live_settings(base_env: dict[str, str], port: int) -> Settings:
    return load_settings({**base_env, "CONSENT_PUBLIC_URL": f"http://127.0.0.1:{port}"})


@pytest.fixture
async def server(live_settings: Settings, port: int) -> AsyncIterator[str]:
    app = create_app(live_settings, clock=SystemClock())
    async with live_server(app, port) as base_url:
        assert base_url == live_settings.public_url
        yield base_url


@pytest.fixture
async def live_worker(live_settings: Settings) -> AsyncIterator[Worker]:
    async with worker_for(live_settings, SystemClock(), max_size=2) as worker:
        yield worker


@pytest.fixture
async def live_api(server: str, db: asyncpg.Connection) -> AsyncIterator[httpx.AsyncClient]:
    """The operator's app talking to the real server over HTTP with an API key."""
    key = await make_api_key(db, "consent:request", "consent:check")
    async with httpx.AsyncClient(
        base_url=server, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
    ) as client:
        yield client


@pytest.fixture(scope="session")
def identity_provider() -> Iterator[DevIdentityProvider]:
    """The development OpenID Connect provider (devidp/) as a real process, for the console."""
    unavailable = identity_provider_unavailable()
    if unavailable:
        pytest.skip(unavailable)
    provider = DevIdentityProvider(free_port(), LOOPBACK_CALLBACK)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def console_port() -> int:
    """The port of a console test's own server, known before the server starts: the identity
    provider redirects back to it."""
    return free_port()


@pytest.fixture
def settings_for_console(
    base_env: dict[str, str], console_port: int, identity_provider: DevIdentityProvider
) -> Settings:
    return console_settings(base_env, console_port, identity_provider.issuer)
