"""SMTP delivery with aiosmtplib: one reused connection, timeouts, multipart text + HTML.

Transport security (``CONSENT_SMTP_URL``'s ``?starttls=``, see ``StartTls``): the connection
is upgraded with STARTTLS whenever the server offers it, and credentials are only ever sent
over TLS unless the URL says ``starttls=off``. Certificates are always verified, against the
system's CAs or ``CONSENT_SMTP_CA_FILE``.
"""

from __future__ import annotations

import functools
import logging
import ssl
import uuid
from datetime import UTC, datetime
from email.header import Header
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import Policy, default
from email.utils import format_datetime

import aiosmtplib

from service.delivery.emails import RenderedEmail
from service.settings import SmtpConfig, StartTls, mailbox

logger = logging.getLogger("service.delivery.smtp")


class SmtpTlsUnavailable(Exception):
    """The SMTP server offers no STARTTLS where TLS is required; nothing was sent.

    The message names the server and the setting only (never an address), so it may be logged.
    """


class _Subject(str):
    """A Subject header that folds without losing a space. Python's own folder (3.11) drops
    the space between two encoded words it folds apart: "račun vašega" arrives as
    "računvašega". The RFC 2047 encoder of ``email.header`` keeps it inside the encoded words."""

    name = "Subject"
    defects = ()

    def fold(self, *, policy: Policy) -> str:
        charset = "us-ascii" if self.isascii() else "utf-8"
        encoded = Header(str(self), charset, header_name=self.name).encode(linesep=policy.linesep)
        return f"{self.name}: {encoded}{policy.linesep}"


# Headers of an email's MIME structure: the same few values on every email, never anything
# about a person, so one parsed header can serve them all.
_SHARED_HEADERS = frozenset(
    {"content-type", "content-transfer-encoding", "mime-version", "content-language"}
)
# Multipart boundaries are new on every email: old ones are dropped once this many are kept.
_SHARED_HEADERS_KEPT = 256


class _ReusedHeaderClasses(HeaderRegistry):
    """The standard header registry, making each header's class once, and each MIME
    structure header once: the stock registry builds a new class with ``type()`` for every
    header it parses and parses the same ``Content-Type`` again for every email, most of the
    time an email takes to build. Header objects are immutable, so the emails come out the
    same."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}
        self._parsed: dict[tuple[str, str], BaseHeader] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        made = self._made.get(name.lower())
        if made is None:
            made = self._made[name.lower()] = super().__getitem__(name)
        return made

    def __call__(self, name: str, value: object) -> BaseHeader:
        if type(value) is not str or name.lower() not in _SHARED_HEADERS:
            return self[name](name, value)
        key = (name, value)
        header = self._parsed.get(key)
        if header is None:
            if len(self._parsed) >= _SHARED_HEADERS_KEPT:
                self._parsed.clear()
            header = self._parsed[key] = self[name](name, value)
        return header


POLICY = default.clone(header_factory=_ReusedHeaderClasses())
# The sender's mailboxes are the same on every email: parsed (and checked) once each, and
# made into a header once each.
_mailbox = functools.lru_cache(maxsize=16)(mailbox)


@functools.lru_cache(maxsize=16)
def _sender_header(name: str, address: str) -> BaseHeader:
    header: BaseHeader = POLICY.header_factory(name, _mailbox(address))
    return header


def message_id(item_id: uuid.UUID, mail_from: str) -> str:
    """The ``Message-ID`` of an outbox email: the same on every attempt, so a receiving mail
    system can drop the copy a retry sends after an attempt whose outcome was lost."""
    return f"<{item_id}@{_mailbox(mail_from).domain}>"


def build_message(
    *,
    item_id: uuid.UUID,
    mail_from: str,
    to: str,
    email: RenderedEmail,
    locale: str,
    reply_to: str | None = None,
) -> EmailMessage:
    """``mail_from`` and ``reply_to`` are mailboxes (``config_values.mailbox``): the header
    registry quotes a display name as needed and encodes one that is not ASCII (RFC 2047)."""
    message = EmailMessage(policy=POLICY)
    message["From"] = _sender_header("From", mail_from)
    if reply_to is not None:
        message["Reply-To"] = _sender_header("Reply-To", reply_to)
    message["To"] = to
    message["Subject"] = _Subject(email.subject)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id(item_id, mail_from)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    for attachment in email.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.text.encode(),
            maintype=maintype,
            subtype=subtype,
            filename=attachment.filename,
        )
    # After the body: set_content() drops every Content-* header set before it.
    message["Content-Language"] = locale
    return message


def tls_context(config: SmtpConfig) -> ssl.SSLContext:
    """Certificate and host name verified; against ``ca_file`` alone when one is set."""
    return ssl.create_default_context(cafile=config.ca_file)


class MailSender:
    def __init__(self, smtp: SmtpConfig, mail_from: str, reply_to: str | None = None) -> None:
        self._config = smtp
        self.mail_from = mail_from
        self.reply_to = reply_to
        self._tls = tls_context(smtp)
        self._client: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        config = self._config
        # STARTTLS and the login are done here, not by aiosmtplib on connect: its opportunistic
        # mode would log in in clear on a server that offers no STARTTLS.
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.use_tls,
            start_tls=False,
            tls_context=self._tls,
            timeout=config.timeout,
        )
        await client.connect()
        try:
            await self._secure(client)
            if config.username is not None:
                await client.login(config.username, config.password or "")
        except BaseException:
            client.close()
            raise
        self._client = client
        return client

    async def _secure(self, client: aiosmtplib.SMTP) -> None:
        config = self._config
        if config.use_tls or config.starttls is StartTls.OFF:
            return
        await client.ehlo()
        if client.supports_extension("starttls"):
            await client.starttls()
            return
        where = f"the SMTP server {config.host}:{config.port} does not offer STARTTLS"
        if config.starttls is StartTls.REQUIRED:
            raise SmtpTlsUnavailable(f"{where} (CONSENT_SMTP_URL has starttls=true)")
        if config.username is not None:
            raise SmtpTlsUnavailable(
                f"{where}: the credentials are not sent in clear "
                "(starttls=off in CONSENT_SMTP_URL allows it, for a local relay)"
            )

    async def send(self, message: EmailMessage) -> None:
        try:
            client = await self._connected()
            await client.send_message(message)
        except aiosmtplib.SMTPServerDisconnected:
            # A reused connection may have been closed by the server while idle: retry once fresh.
            await self.close()
            client = await self._connected()
            await client.send_message(message)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
