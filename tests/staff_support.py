"""Shared helpers for the staff, revocation, audit, webhook, data-rights and retention tests.

- ``StaffKeys``: a development staff key, its JWKS file, and rotation.
- ``start_service``: the app with extra settings (staff, webhooks, ...), an httpx client over
  ASGI with the lifespan running, and a worker on the same ManualClock.
- ``WebhookReceiver``: a real HTTP server on 127.0.0.1 that records what it receives and
  answers with a status the test chooses; ``verified_payload`` checks the Standard Webhooks
  signature independently of the service's code.
- Guardian helpers that obtain a granted consent the way a guardian would (the emailed link),
  and dates relative to the ManualClock (a birth date, a lapse at Ljubljana midnight).
- ``row_counts``: how many rows tables hold (to show a refused request wrote nothing).
- ``personal_traces``: every place in the public schema that still holds a given value.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import Litestar

from service.app import create_app
from service.clock import ManualClock
from service.consent.runtime import Runtime
from service.dev.pgcluster import free_port
from service.security.personal_data import normalize_email
from service.security.staff_tokens import jwks_document, mint_dev_token
from service.security.tokens import generate_signing_key_pem
from service.settings import Settings, load_settings
from service.worker import Worker
from tests.conftest import asgi_client, guardian_link, serving
from tests.guardian_client import open_and_submit, page_csrf

PROBLEM_JSON = "application/problem+json"
STAFF_ISSUER = "https://login.tutoring.test/"
STAFF_AUDIENCE = "consent-service-staff"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"test-webhook-secret-0123456789ab").decode()
ALL_PURPOSES = ["tutoring", "progress_reports", "newsletter"]
GRANT_ALL = {"decision": "grant", "purposes": ALL_PURPOSES, "attestation": "yes"}
CONSENT_SERVICE = str(Path(sys.executable).with_name("consent-service"))
WITHDRAW_HREF = re.compile(r'href="(/guardian/withdraw/[A-Za-z0-9_-]+)"')
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
LJUBLJANA = ZoneInfo("Europe/Ljubljana")


# ---- staff keys and tokens -------------------------------------------------------------------


class StaffKeys:
    """A development staff key (what ``staff-token`` signs with) and the JWKS the app trusts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key_file = directory / "staff-dev-key.pem"
        self.jwks_file = directory / "staff-jwks.json"
        self.pem = b""
        self.kid = ""
        self.rotate()

    def rotate(self, *, keep_old: bool = False) -> None:
        """Switch to a new key; the JWKS then lists the new key (and the old one if kept)."""
        pem = generate_signing_key_pem()
        document = jwks_document(pem)
        if keep_old and self.jwks_file.exists():
            document["keys"] += json.loads(self.jwks_file.read_text())["keys"]
        _write_atomically(self.key_file, pem)
        _write_atomically(self.jwks_file, json.dumps(document).encode())
        self.pem = pem
        self.kid = document["keys"][0]["kid"]

    @property
    def private_key(self) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key(self.pem, password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    def env(self) -> dict[str, str]:
        return {
            "CONSENT_DEV_STAFF_KEY_FILE": str(self.key_file),
            "CONSENT_STAFF_ISSUER": STAFF_ISSUER,
            "CONSENT_STAFF_AUDIENCE": STAFF_AUDIENCE,
            "CONSENT_STAFF_JWKS": str(self.jwks_file),
        }


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def staff_claims(**overrides: Any) -> dict[str, Any]:
    """Valid staff claims (support role, ten minutes left); an override of None drops a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": STAFF_ISSUER,
        "aud": STAFF_AUDIENCE,
        "sub": "alice",
        "roles": ["support"],
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def sign_ed25519(key: Ed25519PrivateKey, kid: str | None, claims: dict[str, Any]) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims, key, algorithm="EdDSA", headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- the service under test ------------------------------------------------------------------


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


def assert_problem(response: httpx.Response, status: int, *, title: bool = False) -> dict[str, Any]:
    """A problem+json answer with ``status`` and a detail (and, with ``title``, a title)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if title:
        assert isinstance(body["title"], str)
        assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


# ---- the command line ------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


async def run_cli(
    *args: str, env: dict[str, str], limit_seconds: float = 60, cwd: Path | None = None
) -> CliResult:
    """Run the installed ``consent-service`` script with exactly ``env`` (plus PATH), in a
    child process without blocking the event loop; the limit is a safety net, not a check."""
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    process = await asyncio.create_subprocess_exec(
        CONSENT_SERVICE,
        *args,
        env=environment,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=limit_seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"consent-service {' '.join(args)} did not finish")
    assert process.returncode is not None
    return CliResult(process.returncode, stdout.decode(), stderr.decode())


# ---- guardian helpers ------------------------------------------------------------------------


def birth_date_years_ago(clock: ManualClock, years: int = 10, day: int = 15) -> str:
    return date(clock.now().year - years, 6, day).isoformat()


def birth_date_turning(clock: ManualClock, age: int, in_days: int) -> date:
    """A birth date such that the child reaches ``age`` in ``in_days`` days (Ljubljana day)."""
    birthday = clock.now().astimezone(LJUBLJANA).date() + timedelta(days=in_days)
    if (birthday.month, birthday.day) == (2, 29):
        birthday += timedelta(days=1)
    return birthday.replace(year=birthday.year - age)


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, clock_time(0), tzinfo=LJUBLJANA).astimezone(UTC)


def request_body(subject_id: str, email: str, birth_date: str, **overrides: Any) -> dict[str, Any]:
    """A consent request for a Slovenian child and every purpose."""
    return {
        "subject_id": subject_id,
        "birth_date": birth_date,
        "country": "SI",
        "guardian_email": email,
        "purposes": ALL_PURPOSES,
        **overrides,
    }


async def create_request(
    client: httpx.AsyncClient,
    api: dict[str, str],
    *,
    subject_id: str,
    email: str,
    birth_date: str,
    **overrides: Any,
) -> uuid.UUID:
    """Open a consent request (201); return its id. Nothing is delivered."""
    response = await client.post(
        "/v1/consent-requests",
        json=request_body(subject_id, email, birth_date, **overrides),
        headers=api,
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


@dataclass(frozen=True)
class Granted:
    request_id: str
    consent_id: str
    withdraw_path: str


async def request_link(
    client: httpx.AsyncClient,
    worker: Worker,
    api: dict[str, str],
    mailbox: Any,
    *,
    subject_id: str,
    email: str,
    birth_date: str,
    only_email: bool = False,
) -> tuple[str, str]:
    """Open a consent request, deliver its email; return (request id, the emailed link).

    With ``only_email`` the guardian must have received exactly one email (this one)."""
    request_id = await create_request(
        client, api, subject_id=subject_id, email=email, birth_date=birth_date
    )
    assert await worker.deliver_due() >= 1
    messages = mailbox.to(normalize_email(email))
    if only_email:
        [message] = messages
    else:
        assert messages, f"no email reached {email}"
        message = messages[-1]
    return str(request_id), guardian_link(message.text)


async def open_request(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    *,
    subject_id: str,
    email: str,
    birth_date: str | None = None,
) -> tuple[str, str]:
    """``request_link`` through the service; the child is ten (``birth_date_years_ago``)
    unless ``birth_date`` says otherwise."""
    return await request_link(
        svc.client,
        svc.worker,
        api,
        mailbox,
        subject_id=subject_id,
        email=email,
        birth_date=birth_date if birth_date is not None else birth_date_years_ago(svc.clock),
    )


async def grant_via_link(client: httpx.AsyncClient, link: str) -> str:
    """Grant every purpose through the emailed link; return the withdrawal page's path."""
    result = await open_and_submit(client, link, GRANT_ALL)
    assert result.status_code == 200, result.text
    match = WITHDRAW_HREF.search(result.text)
    assert match, "the result page has no withdrawal link"
    return match.group(1)


async def granted_consent(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    *,
    subject_id: str,
    email: str,
    birth_date: str | None = None,
) -> Granted:
    request_id, link = await open_request(
        svc, api, mailbox, subject_id=subject_id, email=email, birth_date=birth_date
    )
    withdraw_path = await grant_via_link(svc.client, link)
    answer = await check(svc.client, api, subject_id)
    assert answer["status"] == "granted", answer
    return Granted(
        request_id=request_id, consent_id=str(answer["consent_id"]), withdraw_path=withdraw_path
    )


async def check(
    client: httpx.AsyncClient, api: dict[str, str], subject_id: str, purpose: str = "tutoring"
) -> dict[str, Any]:
    response = await client.get(
        "/v1/consents/check", params={"subject_id": subject_id, "purpose": purpose}, headers=api
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def withdraw_csrf(client: httpx.AsyncClient, withdraw_path: str) -> str:
    return await page_csrf(client, withdraw_path)


async def withdraw_via_form(
    client: httpx.AsyncClient, withdraw_path: str, **extra: str
) -> httpx.Response:
    token = await withdraw_csrf(client, withdraw_path)
    return await client.post(withdraw_path, data={"confirm": "yes", **extra, "_csrf_token": token})


# ---- a real webhook receiver -----------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload


@dataclass
class WebhookReceiver:
    """An HTTP server in a thread on 127.0.0.1; ``status`` is what it answers next."""

    port: int = field(default_factory=free_port)
    status: int = 200
    _deliveries: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/consent"

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def of_type(self, event_type: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.json().get("type") == event_type]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                status = receiver.status
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    receiver._deliveries.append(Delivery(headers, body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


@asynccontextmanager
async def webhook_receiver(*, started: bool = True) -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    if started:
        receiver.start()
    try:
        yield receiver
    finally:
        await asyncio.to_thread(receiver.stop)


def expected_signature(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks: v1,base64(HMAC-SHA256(base64decode(secret), "id.timestamp.body"))."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verified_payload(delivery: Delivery, secret: str = WEBHOOK_SECRET) -> dict[str, Any]:
    """What a receiver following the convention does before trusting the body."""
    headers = delivery.headers
    message_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    assert message_id
    assert timestamp.isdigit(), timestamp
    # Receivers reject stale timestamps (replay protection); five minutes is the convention.
    assert abs(int(timestamp) - time.time()) < 300
    expected = expected_signature(secret, message_id, timestamp, delivery.body)
    offered = headers["webhook-signature"].split(" ")
    assert any(hmac.compare_digest(expected, candidate) for candidate in offered), (
        f"signature mismatch: {offered} vs {expected}"
    )
    return delivery.json()


# ---- what the database holds -----------------------------------------------------------------

PERSONAL_TABLES = ("consent_requests", "consents", "outbox", "audit_events", "idempotency_keys")
# What a POST /v1/consent-requests may write (a consent comes only from a guardian's decision).
REQUEST_TABLES = ("consent_requests", "outbox", "audit_events", "idempotency_keys")
NOTHING_STORED = dict.fromkeys(REQUEST_TABLES, 0)


async def row_counts(
    db: asyncpg.Connection, tables: Sequence[str] = PERSONAL_TABLES
) -> dict[str, int]:
    """How many rows each of ``tables`` holds."""
    return {table: await db.fetchval(f"select count(*) from {table}") for table in tables}


# ---- personal data anywhere in the database --------------------------------------------------

TEXTUAL = {"text", "character varying", "character", "jsonb", "json"}


async def personal_traces(
    db: asyncpg.Connection, *, texts: Sequence[str], dates: Sequence[date] = ()
) -> list[str]:
    """Every ``table.column`` of the public schema holding one of ``texts`` (case-insensitive,
    also as bytes in bytea) or one of ``dates`` (as a date or its ISO string)."""
    needles = [t.lower() for t in texts] + [d.isoformat() for d in dates]
    columns = await db.fetch(
        """
        select c.table_name, c.column_name, c.data_type, c.udt_name
        from information_schema.columns c
        join information_schema.tables t
          on t.table_schema = c.table_schema and t.table_name = c.table_name
        where c.table_schema = 'public' and t.table_type = 'BASE TABLE'
        order by c.table_name, c.ordinal_position
        """
    )
    found = []
    for column in columns:
        table, name, data_type = column["table_name"], column["column_name"], column["data_type"]
        array_of_text = data_type == "ARRAY" and column["udt_name"] in {"_text", "_varchar"}
        if data_type in TEXTUAL or array_of_text:
            values = await db.fetch(
                f'select "{name}"::text as v from "{table}" where "{name}" is not null'
            )
            if any(n in row["v"].lower() for row in values for n in needles):
                found.append(f"{table}.{name}")
        elif data_type == "bytea":
            values = await db.fetch(
                f'select "{name}" as v from "{table}" where "{name}" is not null'
            )
            raw_needles = [n.encode() for n in needles]
            if any(n in bytes(row["v"]).lower() for row in values for n in raw_needles):
                found.append(f"{table}.{name}")
        elif data_type == "date" and dates:
            hit = await db.fetchval(
                f'select count(*) from "{table}" where "{name}" = any($1::date[])', list(dates)
            )
            if hit:
                found.append(f"{table}.{name}")
    return found
