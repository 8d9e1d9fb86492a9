"""SMTP delivery with aiosmtplib: one reused connection, timeouts, multipart text + HTML."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from service.delivery.emails import RenderedEmail
from service.settings import SmtpConfig

logger = logging.getLogger("service.delivery.smtp")


def build_message(*, mail_from: str, to: str, email: RenderedEmail, locale: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = email.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=mail_from.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    # After the body: set_content() drops every Content-* header set before it.
    message["Content-Language"] = locale
    return message


class MailSender:
    def __init__(self, smtp: SmtpConfig, mail_from: str) -> None:
        self._config = smtp
        self.mail_from = mail_from
        self._client: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.use_tls,
            start_tls=config.starttls if config.starttls else False,
            timeout=config.timeout,
        )
        await client.connect()
        self._client = client
        return client

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
