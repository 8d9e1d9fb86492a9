"""Transport security towards the SMTP server: STARTTLS whenever the server offers it, the
credentials only ever after it (unless ``?starttls=off`` says otherwise, for a local relay),
certificates verified against the system's CAs or ``CONSENT_SMTP_CA_FILE``.

Real aiosmtpd servers that offer STARTTLS and/or AUTH and record what each session did; real
PostgreSQL; the worker delivers the email of a real consent request.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.clock import ManualClock
from service.settings import ConfigError, load_settings
from tests.support.dates import birth_date_years_ago
from tests.support.flows import create_request
from tests.support.service import worker_for
from tests.support.smtp_servers import RecordingSmtpServer, TlsFiles, tls_files
from tests.support.stored_data import email_row

GUARDIAN = "tls.guardian@example.com"
LOGIN, PASSWORD = "mailer", "s3cret:pass"
CREDENTIALS = f"{LOGIN}:s3cret%3Apass@"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The CA the service is told to trust, and the server certificate it signed."""
    return tls_files(tmp_path_factory.mktemp("smtp-pki"), label="trusted")


@pytest.fixture(scope="module")
def stranger_pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Another CA, and a server certificate for the same address that the service has no
    reason to trust."""
    return tls_files(tmp_path_factory.mktemp("smtp-stranger"), label="stranger")


def serve(*, tls: TlsFiles | None = None, auth: bool = False) -> Iterator[RecordingSmtpServer]:
    server = RecordingSmtpServer(tls=tls, credentials=(LOGIN, PASSWORD) if auth else None)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tls_and_auth(pki: TlsFiles) -> Iterator[RecordingSmtpServer]:
    yield from serve(tls=pki, auth=True)


@pytest.fixture
def tls_only(pki: TlsFiles) -> Iterator[RecordingSmtpServer]:
    yield from serve(tls=pki)


@pytest.fixture
def auth_without_tls() -> Iterator[RecordingSmtpServer]:
    yield from serve(auth=True)


@pytest.fixture
def plain() -> Iterator[RecordingSmtpServer]:
    """Like the development mail catcher: no TLS, no AUTH."""
    yield from serve()


@pytest.fixture
def untrusted(stranger_pki: TlsFiles) -> Iterator[RecordingSmtpServer]:
    yield from serve(tls=stranger_pki, auth=True)


async def deliver(
    base_env: dict[str, str],
    clock: ManualClock,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    smtp: dict[str, str],
) -> uuid.UUID:
    """Open a consent request and let a worker with the ``smtp`` settings try its email once;
    the request's id."""
    request_id = await create_request(
        client, auth, subject_id="child-tls", email=GUARDIAN, birth_date=birth_date_years_ago(clock)
    )
    async with worker_for(load_settings({**base_env, **smtp}), clock) as worker:
        await worker.deliver_due()
    return request_id


def trusting(pki: TlsFiles, url: str) -> dict[str, str]:
    return {"CONSENT_SMTP_URL": url, "CONSENT_SMTP_CA_FILE": str(pki.ca)}


# ---- STARTTLS is used whenever the server offers it ------------------------------------------


@pytest.mark.parametrize("query", ["", "?starttls=auto", "?starttls=true"])
async def test_the_credentials_are_sent_only_after_starttls(
    base_env: dict[str, str],
    clock: ManualClock,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    db: asyncpg.Connection,
    pki: TlsFiles,
    tls_and_auth: RecordingSmtpServer,
    query: str,
) -> None:
    url = tls_and_auth.url.replace("smtp://", f"smtp://{CREDENTIALS}") + query
    request_id = await deliver(base_env, clock, client, auth, trusting(pki, url))

    assert (await email_row(db, request_id))["status"] == "sent"
    kinds = [(event.kind, event.tls) for event in tls_and_auth.events]
    assert kinds == [("starttls", True), ("auth", True), ("data", True)], kinds
    [login] = tls_and_auth.of_kind("auth")
    assert (login.login, login.password) == (LOGIN, PASSWORD)
    [data] = tls_and_auth.of_kind("data")
    assert GUARDIAN.encode() in (data.raw or b"")


async def test_without_credentials_starttls_is_still_used_when_offered(
    base_env: dict[str, str],
    clock: ManualClock,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    db: asyncpg.Connection,
    pki: TlsFiles,
    tls_only: RecordingSmtpServer,
) -> None:
    request_id = await deliver(base_env, clock, client, auth, trusting(pki, tls_only.url))

    assert (await email_row(db, request_id))["status"] == "sent"
    kinds = [(event.kind, event.tls) for event in tls_only.events]
    assert kinds == [("starttls", True), ("data", True)], kinds


async def test_a_plain_server_without_credentials_gets_the_mail_as_before(
    base_env: dict[str, str],
    clock: ManualClock,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    db: asyncpg.Connection,
    plain: RecordingSmtpServer,
) -> None:
    """The development mail catcher's case: nothing to protect, nothing offered, no refusal."""
    request_id = await deliver(base_env, clock, client, auth, {"CONSENT_SMTP_URL": plain.url})

    assert (await email_row(db, request_id))["status"] == "sent"
    assert [(event.kind, event.tls) for event in plain.events] == [("data", False)]


# ---- no TLS where it is required: nothing is sent ----------------------------------------------


@pytest.mark.parametrize(
    ("credentials", "query", "reason"),
    [
        (CREDENTIALS, "", "the credentials are not sent in clear"),
        (CREDENTIALS, "?starttls=true", "starttls=true"),
        ("", "?starttls=true", "starttls=true"),
    ],
    ids=["credentials", "credentials-and-starttls-true", "starttls-true"],
)
async def test_a_server_without_starttls_gets_nothing_when_tls_is_required(
    base_env: dict[str, str],
    clock: ManualClock,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    db: asyncpg.Connection,
    auth_without_tls: RecordingSmtpServer,
    credentials: str,
    query: str,
    reason: str,
) -> None:
    url = auth_without_tls.url.replace("smtp://", f"smtp://{credentials}") + query
    request_id = await deliver(base_env, clock, client, auth, {"CONSENT_SMTP_URL": url})

    assert auth_without_tls.events == []  # no AUTH, no DATA: nothing left in clear
    row = await email_row(db, request_id)
    assert (row["status"], row["attempts"]) == ("pending", 1)  # queued for a later attempt
    assert row["payload_enc"] is not None
    assert "does not offer STARTTLS" in row["last_error"]
    assert reason in row["last_error"]
    assert GUARDIAN not in row["last_error"]


async def test_starttls_off_is_the_explicit_opt_out_for_a_local_relay(
    base_env: dict[str, str],
    clock: ManualClock,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    db: asyncpg.Connection,
    auth_without_tls: RecordingSmtpServer,
) -> None:
    url = auth_without_tls.url.replace("smtp://", f"smtp://{CREDENTIALS}") + "?starttls=off"
    request_id = await deliver(base_env, clock, client, auth, {"CONSENT_SMTP_URL": url})

    assert (await email_row(db, request_id))["status"] == "sent"
    kinds = [(event.kind, event.tls) for event in auth_without_tls.events]
    assert kinds == [("auth", False), ("data", False)]


# ---- certificates are verified -----------------------------------------------------------------


@pytest.mark.parametrize("credentials", [CREDENTIALS, ""], ids=["credentials", "anonymous"])
@pytest.mark.parametrize(
    "trust", ["system CAs", "another CA", "wrong host name"], ids=["system", "other-ca", "host"]
)
async def test_a_certificate_the_service_cannot_verify_is_refused(
    base_env: dict[str, str],
    clock: ManualClock,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    db: asyncpg.Connection,
    pki: TlsFiles,
    stranger_pki: TlsFiles,
    untrusted: RecordingSmtpServer,
    credentials: str,
    trust: str,
) -> None:
    """The server offers STARTTLS with a certificate the service does not trust: it neither
    sends in clear nor goes on without verification, whether or not it has a password."""
    url = untrusted.url.replace("smtp://", f"smtp://{credentials}")
    if trust == "system CAs":
        smtp = {"CONSENT_SMTP_URL": url}
    elif trust == "another CA":
        smtp = trusting(pki, url)
    else:  # the right CA, but the certificate names 127.0.0.1, not localhost
        smtp = trusting(stranger_pki, url.replace("127.0.0.1", "localhost"))
    request_id = await deliver(base_env, clock, client, auth, smtp)

    assert [event.kind for event in untrusted.events] == []  # no AUTH, no DATA
    row = await email_row(db, request_id)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["payload_enc"] is not None
    assert row["last_error"]


# ---- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "mode"),
    [
        ("", "auto"),
        ("?starttls=auto", "auto"),
        ("?starttls=true", "required"),
        ("?starttls=required", "required"),
        ("?starttls=off", "off"),
        ("?starttls=false", "off"),
    ],
)
def test_starttls_modes(base_env: dict[str, str], query: str, mode: str) -> None:
    settings = load_settings({**base_env, "CONSENT_SMTP_URL": f"smtp://mail.example{query}"})
    assert settings.smtp.starttls == mode


@pytest.mark.parametrize("query", ["?starttls=true", "?starttls=off"])
def test_starttls_does_not_apply_to_smtps(base_env: dict[str, str], query: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({**base_env, "CONSENT_SMTP_URL": f"smtps://mail.example{query}"})
    assert str(error.value).startswith("CONSENT_SMTP_URL:")


def test_the_ca_file_must_hold_a_certificate(base_env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    for path in (missing, not_pem):
        with pytest.raises(ConfigError) as error:
            load_settings({**base_env, "CONSENT_SMTP_CA_FILE": str(path)})
        assert str(error.value).startswith("CONSENT_SMTP_CA_FILE:")


def test_the_ca_file_is_read_into_the_smtp_settings(
    base_env: dict[str, str], pki: TlsFiles
) -> None:
    settings = load_settings({**base_env, "CONSENT_SMTP_CA_FILE": str(pki.ca)})
    assert settings.smtp.ca_file == str(pki.ca)
    assert load_settings(base_env).smtp.ca_file is None
