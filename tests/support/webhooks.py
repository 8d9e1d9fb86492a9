"""A real webhook receiver: an HTTP server on 127.0.0.1 that records what it receives and
answers with a status the test chooses; ``verified_payload`` checks the Standard Webhooks
signature independently of the service's code."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from service.dev.pgcluster import free_port

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"test-webhook-secret-0123456789ab").decode()


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


def webhook_env(receiver: WebhookReceiver) -> dict[str, str]:
    """Settings that send the service's webhooks to ``receiver``, signed with WEBHOOK_SECRET."""
    return {"CONSENT_WEBHOOK_URL": receiver.url, "CONSENT_WEBHOOK_SECRET": WEBHOOK_SECRET}


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
