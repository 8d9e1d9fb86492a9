"""Webhook delivery signed per the Standard Webhooks convention."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx

TIMEOUT_SECONDS = 10.0


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookError(Exception):
    pass


class WebhookSender:
    def __init__(self, url: str, secret: str) -> None:
        self._url = url
        self._secret = secret
        self._client = httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False)

    async def send(self, message_id: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(self._secret, message_id, timestamp, body),
        }
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise WebhookError(f"{type(exc).__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise WebhookError(f"receiver answered {response.status_code}")

    async def close(self) -> None:
        await self._client.aclose()
