"""`/dev/webhooks`: the development webhook receiver. `dev` points CONSENT_WEBHOOK_URL here
(with a secret of its own) unless one is configured; each delivery is kept with whether its
Standard Webhooks signature verifies, checked here independently of the sender's code."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler

WEBHOOKS_PATH = "/dev/webhooks"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def signature_verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``, any of the
    space-separated signatures matching."""
    message_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    if not message_id or not timestamp.isdigit():
        return False
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        return False
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in headers.get("webhook-signature", "").split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


@dataclass(frozen=True)
class WebhookDelivery:
    received_at: datetime
    webhook_id: str
    topic: str
    payload: Any
    verified: bool


class WebhookInbox:
    def __init__(self, secret: str, limit: int = 500) -> None:
        self.secret = secret
        self._deliveries: deque[WebhookDelivery] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def receive(self, headers: dict[str, str], body: bytes) -> WebhookDelivery:
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = body.decode("utf-8", "replace")
        topic = payload.get("type", "") if isinstance(payload, dict) else ""
        delivery = WebhookDelivery(
            received_at=datetime.now(UTC),
            webhook_id=headers.get("webhook-id", ""),
            topic=str(topic),
            payload=payload,
            verified=signature_verifies(self.secret, headers, body),
        )
        with self._lock:
            self._deliveries.append(delivery)
        return delivery

    @property
    def deliveries(self) -> list[WebhookDelivery]:
        with self._lock:
            return list(self._deliveries)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Development webhooks</title><link rel="stylesheet" href="/static/guardian.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"></head>
<body><main><h1>Development webhooks</h1>
<p>Webhooks the service delivered to <code>{path}</code> while running with
<code>consent-service dev</code>, newest first, each with whether its Standard Webhooks signature
verifies with the secret <code>dev</code> generated. Reload to see new ones.
Mail: <a href="/dev/mail">/dev/mail</a>.</p>{body}</main></body></html>"""


def render_webhooks(inbox: WebhookInbox) -> str:
    items = []
    for delivery in reversed(inbox.deliveries):
        verdict = "signature verified" if delivery.verified else "signature NOT verified"
        payload = json.dumps(delivery.payload, indent=2, ensure_ascii=False, sort_keys=True)
        items.append(
            f'<article class="webhook {"verified" if delivery.verified else "unverified"}">'
            f"<h2>{escape(delivery.topic or '(no type)')}</h2>"
            f"<p>{delivery.received_at:%Y-%m-%d %H:%M:%S} UTC, id "
            f"<code>{escape(delivery.webhook_id)}</code>: <strong>{verdict}</strong></p>"
            f"<pre>{escape(payload)}</pre></article>"
        )
    body = "".join(items) or "<p>No webhooks yet.</p>"
    return _PAGE.format(path=WEBHOOKS_PATH, body=body)


def webhook_routes(inbox: WebhookInbox) -> list[HTTPRouteHandler]:
    """The receiver (POST) and its page (GET); only ``dev`` registers them."""

    @post(WEBHOOKS_PATH, include_in_schema=False, status_code=204)
    async def receive(request: Request[Any, Any, Any]) -> None:
        headers = {name.lower(): value for name, value in request.headers.items()}
        inbox.receive(headers, await request.body())

    @get(WEBHOOKS_PATH, include_in_schema=False)
    async def page() -> Response[str]:
        return Response(
            render_webhooks(inbox),
            media_type="text/html",
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )

    return [receive, page]
