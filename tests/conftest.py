"""Shared fixtures: a real PostgreSQL (private cluster or CONSENT_TEST_DATABASE_URL), one
migrated template database cloned per test, a real SMTP server (aiosmtpd), and the app.

Fixtures only; the helpers they use live in tests/support, which never imports this module."""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from service.app import create_app
from service.clock import ManualClock
from service.db.migrate import migrate
from service.dev.mailcatcher import MailCatcher
from service.dev.pgcluster import LocalCluster
from service.security.tokens import generate_signing_key_pem
from service.settings import REPOSITORY_SCHEMAS_DIR, Settings, load_settings
from service.worker import Worker
from tests.support.credentials import OPERATOR_ENV, StaffKeys, make_api_key
from tests.support.databases import scratch_database, with_database
from tests.support.service import Service, serving, start_service, worker_for
from tests.support.webhooks import WebhookReceiver, webhook_receiver


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


@pytest.fixture(scope="session")
async def template_database(postgres_admin_dsn: str) -> AsyncIterator[str]:
    async with scratch_database(postgres_admin_dsn, "consent_tmpl") as name:
        await migrate(with_database(postgres_admin_dsn, name), REPOSITORY_SCHEMAS_DIR)
        yield name


@pytest.fixture
async def database_url(postgres_admin_dsn: str, template_database: str) -> AsyncIterator[str]:
    async with scratch_database(
        postgres_admin_dsn, "consent_test", template=template_database
    ) as name:
        yield with_database(postgres_admin_dsn, name)


@pytest.fixture
async def empty_database_url(postgres_admin_dsn: str) -> AsyncIterator[str]:
    async with scratch_database(postgres_admin_dsn, "consent_empty") as name:
        yield with_database(postgres_admin_dsn, name)


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
        **OPERATOR_ENV,
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


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app) as http:
        yield http


@pytest.fixture
async def api_key(db: asyncpg.Connection) -> str:
    return await make_api_key(db)


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
async def worker(settings: Settings, clock: ManualClock) -> AsyncIterator[Worker]:
    async with worker_for(settings, clock) as replica:
        yield replica


@pytest.fixture
async def api(db: asyncpg.Connection) -> dict[str, str]:
    """Headers with an API key of all scopes (a key of its own, besides ``auth``'s)."""
    return {"Authorization": f"Bearer {await make_api_key(db)}"}


# ---- the staff-enabled service ---------------------------------------------------------------


@pytest.fixture
def staff_keys(tmp_path: Path) -> StaffKeys:
    """A development staff key and the JWKS the app trusts, in ``tmp_path``."""
    return StaffKeys(tmp_path)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """A running webhook receiver (a module's ``svc_env`` points the service at it)."""
    async with webhook_receiver() as running_receiver:
        yield running_receiver


@pytest.fixture
def svc_env() -> dict[str, str]:
    """Settings a test module adds to ``svc``'s (override it in the module)."""
    return {}


@pytest.fixture
async def svc(
    base_env: dict[str, str], clock: ManualClock, staff_keys: StaffKeys, svc_env: dict[str, str]
) -> AsyncIterator[Service]:
    """``start_service`` with the staff keys and ``svc_env``."""
    async with start_service(base_env, clock, {**staff_keys.env(), **svc_env}) as service_:
        yield service_
