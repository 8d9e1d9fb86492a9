"""Shared fixtures: a real PostgreSQL (private cluster or CONSENT_TEST_DATABASE_URL), one
migrated template database cloned per test, a real SMTP server (aiosmtpd), and the app."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from litestar import Litestar

from service.app import create_app
from service.clock import Clock, ManualClock
from service.consent.runtime import Runtime
from service.db import api_keys
from service.db.migrate import migrate
from service.dev.mailcatcher import MailCatcher
from service.dev.pgcluster import LocalCluster
from service.security.tokens import generate_signing_key_pem
from service.settings import Settings, load_settings
from service.worker import Worker

if TYPE_CHECKING:
    from tests.staff_support import Service, StaffKeys


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> Iterator[str]:
    configured = os.environ.get("CONSENT_TEST_DATABASE_URL", "").strip()
    if configured:
        yield configured
        return
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="consent-test-pg-")))
    cluster.start()
    try:
        yield cluster.admin_dsn
    finally:
        cluster.destroy()


async def _admin(admin_dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(admin_dsn)


@asynccontextmanager
async def _scratch_database(
    admin_dsn: str, prefix: str, *, template: str | None = None
) -> AsyncIterator[str]:
    """A new database named ``prefix`` plus a random suffix (from ``template`` if given);
    yields its name and drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    copy_of = f' template "{template}"' if template is not None else ""
    admin = await _admin(admin_dsn)
    await admin.execute(f'create database "{name}"{copy_of}')
    await admin.close()
    try:
        yield name
    finally:
        admin = await _admin(admin_dsn)
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()


@pytest.fixture(scope="session")
async def template_database(postgres_admin_dsn: str) -> AsyncIterator[str]:
    async with _scratch_database(postgres_admin_dsn, "consent_tmpl") as name:
        await migrate(_with_database(postgres_admin_dsn, name))
        yield name


@pytest.fixture
async def database_url(postgres_admin_dsn: str, template_database: str) -> AsyncIterator[str]:
    async with _scratch_database(
        postgres_admin_dsn, "consent_test", template=template_database
    ) as name:
        yield _with_database(postgres_admin_dsn, name)


@pytest.fixture
async def empty_database_url(postgres_admin_dsn: str) -> AsyncIterator[str]:
    async with _scratch_database(postgres_admin_dsn, "consent_empty") as name:
        yield _with_database(postgres_admin_dsn, name)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[MailCatcher]:
    catcher = MailCatcher()
    catcher.start()
    try:
        yield catcher
    finally:
        catcher.stop()


@pytest.fixture
def mailbox(smtp_server: MailCatcher) -> Any:
    smtp_server.mailbox.clear()
    return smtp_server.mailbox


@pytest.fixture(scope="session")
def key_files() -> dict[str, str]:
    directory = Path(tempfile.mkdtemp(prefix="consent-test-keys-"))
    signing = directory / "signing.pem"
    signing.write_bytes(generate_signing_key_pem())
    return {"signing": str(signing), "data_key": base64.b64encode(os.urandom(32)).decode()}


@pytest.fixture
def base_env(
    database_url: str, smtp_server: MailCatcher, key_files: dict[str, str]
) -> dict[str, str]:
    return {
        "CONSENT_DATABASE_URL": database_url,
        "CONSENT_SMTP_URL": smtp_server.url,
        "CONSENT_MAIL_FROM": "consent@tutoring.example",
        "CONSENT_PUBLIC_URL": "http://consent.test",
        "CONSENT_SIGNING_KEY_FILE": key_files["signing"],
        "CONSENT_DATA_KEY": key_files["data_key"],
        "CONSENT_CONFIRMATION_DELAY": "0",
        "CONSENT_OPERATOR_NAME": "Učilnica Tutoring",
    }


@pytest.fixture
def settings(base_env: dict[str, str]) -> Settings:
    return load_settings(base_env)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Litestar:
    return create_app(settings, clock=clock)


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


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app) as http:
        yield http


async def make_api_key(db: asyncpg.Connection, *scopes: str, name: str = "signup") -> str:
    key, _ = await api_keys.create_api_key(
        db, name=name, scopes=list(scopes or api_keys.SCOPES), now=datetime.now(UTC)
    )
    return key


@pytest.fixture
async def api_key(db: asyncpg.Connection) -> str:
    return await make_api_key(db)


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


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


@pytest.fixture
async def worker(settings: Settings, clock: ManualClock) -> AsyncIterator[Worker]:
    async with worker_for(settings, clock) as replica:
        yield replica


@pytest.fixture
async def api(db: asyncpg.Connection) -> dict[str, str]:
    """Headers with an API key of all scopes (a key of its own, besides ``auth``'s)."""
    return {"Authorization": f"Bearer {await make_api_key(db)}"}


# The staff-enabled service. tests.staff_support imports this module, hence the imports inside.


@pytest.fixture
def staff_keys(tmp_path: Path) -> StaffKeys:
    """A development staff key and the JWKS the app trusts, in ``tmp_path``."""
    from tests.staff_support import StaffKeys

    return StaffKeys(tmp_path)


@pytest.fixture
def svc_env() -> dict[str, str]:
    """Settings a test module adds to ``svc``'s (override it in the module)."""
    return {}


@pytest.fixture
async def svc(
    base_env: dict[str, str], clock: ManualClock, staff_keys: StaffKeys, svc_env: dict[str, str]
) -> AsyncIterator[Service]:
    """``start_service`` with the staff keys and ``svc_env``."""
    from tests.staff_support import start_service

    async with start_service(base_env, clock, {**staff_keys.env(), **svc_env}) as service_:
        yield service_


LINK = re.compile(r"https?://[^\s<>\"]+/guardian/(?:withdraw/)?[A-Za-z0-9_-]+")


def guardian_link(text: str) -> str:
    match = LINK.search(text)
    assert match, f"no guardian link in: {text[:400]}"
    return match.group(0)
