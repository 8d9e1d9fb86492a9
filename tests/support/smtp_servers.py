"""Real SMTP servers (aiosmtpd) for the delivery tests, each recording what it saw.

- ``tls_files``: a private CA and a server certificate for 127.0.0.1 signed by it, as PEM files.
- ``RecordingSmtpServer``: offers STARTTLS (given a certificate) and/or AUTH (given accepted
  credentials, also before TLS so a client that would log in in clear can), records every
  session's STARTTLS, AUTH and DATA with whether TLS was on at the time, and can stall its
  answer to DATA to one recipient until released (a send that takes as long as the test
  wants).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from service.dev.pgcluster import free_port

HOST = "127.0.0.1"


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate a client trusts (CONSENT_SMTP_CA_FILE)
    certificate: Path  # the server's certificate, for 127.0.0.1
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, self.key)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def tls_files(directory: Path, *, label: str = "test") -> TlsFiles:
    """A fresh CA and a certificate for ``127.0.0.1`` it signed, written under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{label} SMTP CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(HOST))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(
        ca=directory / f"{label}-ca.pem",
        certificate=directory / f"{label}-server.pem",
        key=directory / f"{label}-server.key",
    )
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@dataclass(frozen=True)
class Event:
    """One thing a session did: ``starttls``, ``auth`` (with the login) or ``data`` (with the
    message); ``tls`` says whether the session was encrypted at that point."""

    kind: str
    tls: bool
    login: str | None = None
    password: str | None = None
    recipients: tuple[str, ...] = ()
    raw: bytes | None = None

    @property
    def message_id(self) -> str:
        assert self.raw is not None
        return str(message_from_bytes(self.raw, policy=email_policy.default)["Message-ID"])


class RecordingSmtpServer:
    def __init__(
        self,
        *,
        tls: TlsFiles | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"smtp://{HOST}:{self.port}"
        self._credentials = credentials
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._stalled: str | None = None  # the recipient whose DATA waits; set by the test
        self._gate = asyncio.Event()  # waited on by stalled DATA, in the server's loop
        parameters: dict[str, Any] = {}
        if tls is not None:
            parameters["tls_context"] = tls.server_context()
        if credentials is not None:
            # Offered before STARTTLS too: whether credentials travel in clear is the client's
            # decision, which is what the tests look at.
            parameters.update(authenticator=self._authenticate, auth_require_tls=False)
        self._controller = Controller(
            self, hostname=HOST, port=self.port, server_hostname="smtp.test", **parameters
        )

    # ---- control -----------------------------------------------------------------------------

    def start(self) -> RecordingSmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self.release()
        self._controller.stop()

    def stall(self, recipient: str) -> None:
        """Leave every DATA to ``recipient`` from now on unanswered (after recording it) until
        ``release``; mail to others is answered at once."""
        self._stalled = recipient

    def release(self) -> None:
        """Answer the stalled DATA, and every later one at once."""
        self._stalled = None
        self._controller.loop.call_soon_threadsafe(self._gate.set)

    # ---- what it saw -------------------------------------------------------------------------

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def of_kind(self, kind: str) -> list[Event]:
        return [event for event in self.events if event.kind == kind]

    def messages_to(self, recipient: str) -> list[Event]:
        """Every DATA to ``recipient``, answered or not."""
        return [event for event in self.of_kind("data") if recipient in event.recipients]

    def _record(self, session: Any, kind: str, **details: Any) -> None:
        with self._lock:
            self._events.append(Event(kind=kind, tls=session.ssl is not None, **details))

    # ---- aiosmtpd hooks ----------------------------------------------------------------------

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self._record(session, "auth", login=login, password=password)
        return AuthResult(success=(login, password) == self._credentials)

    def handle_STARTTLS(self, server: Any, session: Any, envelope: Any) -> bool:
        self._record(session, "starttls")
        return True

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        recipients = tuple(envelope.rcpt_tos)
        self._record(session, "data", recipients=recipients, raw=envelope.original_content)
        while self._stalled is not None and self._stalled in recipients:
            # No await between the check and the wait: release()'s set() comes after both.
            self._gate.clear()
            await self._gate.wait()
        return "250 Message accepted"
