"""A real SMTP server (aiosmtpd) that keeps what it receives: the `dev` mailbox and tests' inbox."""

from __future__ import annotations

import re
import threading
from collections import deque
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import msgspec
from aiosmtpd.controller import Controller

_URL = re.compile(r"https?://[^\s<>\"')]+")


class CapturedMessage(msgspec.Struct, frozen=True, kw_only=True):
    number: int = 0  # the mailbox's running count, from 1: how /dev/mail names a message
    message_id: str = ""
    received_at: datetime
    sender: str
    recipients: list[str]
    subject: str
    text: str
    html: str
    raw: bytes

    @property
    def links(self) -> list[str]:
        return list(dict.fromkeys(_URL.findall(self.text)))


def _parts(message: EmailMessage) -> tuple[str, str]:
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    text = text_part.get_content() if text_part is not None else ""
    html = html_part.get_content() if html_part is not None else ""
    return str(text), str(html)


class Mailbox:
    def __init__(self, limit: int = 500) -> None:
        self._messages: deque[CapturedMessage] = deque(maxlen=limit)
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._count = 0

    def add(self, sender: str, recipients: list[str], raw: bytes) -> None:
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        text, html = _parts(parsed)
        with self._lock:
            self._count += 1
            number = self._count
        captured = CapturedMessage(
            number=number,
            message_id=str(parsed.get("Message-ID", "")),
            received_at=datetime.now(UTC),
            sender=sender,
            recipients=recipients,
            subject=str(parsed.get("Subject", "")),
            text=text,
            html=html,
            raw=raw,
        )
        with self._arrived:
            self._messages.append(captured)
            self._arrived.notify_all()

    @property
    def messages(self) -> list[CapturedMessage]:
        with self._lock:
            return list(self._messages)

    def numbered(self, number: int) -> CapturedMessage | None:
        return next((m for m in self.messages if m.number == number), None)

    def to(self, recipient: str) -> list[CapturedMessage]:
        return [m for m in self.messages if recipient in m.recipients]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()


class _Handler:
    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._mailbox.add(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        return "250 Message accepted"


class MailCatcher:
    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, mailbox: Mailbox | None = None
    ) -> None:
        self.mailbox = mailbox or Mailbox()
        self.host = host
        self.port = port
        self._controller: Controller | None = None

    def start(self) -> None:
        if not self.port:
            from service.dev.pgcluster import free_port

            self.port = free_port()
        self._controller = Controller(_Handler(self.mailbox), hostname=self.host, port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"
