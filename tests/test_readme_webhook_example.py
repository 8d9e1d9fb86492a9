"""The README's webhook verification example, run as written: it accepts what the service
sends and refuses a replay (a correctly signed request whose timestamp is too old or too far in
the future)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from service.delivery.webhooks import WebhookSender
from tests.support.webhooks import WEBHOOK_SECRET, expected_signature, webhook_receiver

README = Path(__file__).resolve().parents[1] / "README.md"
Verify = Callable[[str, dict[str, str], bytes], bool]


def readme_verify() -> Verify:
    webhooks = README.read_text().split("\n## Webhooks\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", webhooks, flags=re.DOTALL)
    [code] = [block for block in blocks if "def verify(" in block]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the documentation's own code
    verify = namespace["verify"]
    assert callable(verify)
    return verify


def signed_at(timestamp: int, headers: dict[str, str], body: bytes) -> dict[str, str]:
    """The same request, as if it had been signed at ``timestamp``."""
    return {
        **headers,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": expected_signature(
            WEBHOOK_SECRET, headers["webhook-id"], str(timestamp), body
        ),
    }


async def test_the_readme_example_accepts_a_delivery_and_refuses_a_replay() -> None:
    verify = readme_verify()
    async with webhook_receiver() as receiver:
        sender = WebhookSender(receiver.url, WEBHOOK_SECRET)
        try:
            await sender.send("msg_readme_1", {"type": "consent.revoked", "data": {}})
        finally:
            await sender.close()
        [delivery] = receiver.deliveries
    headers, body = delivery.headers, delivery.body
    assert verify(WEBHOOK_SECRET, headers, body)

    now = int(time.time())
    assert verify(WEBHOOK_SECRET, signed_at(now - 4 * 60, headers, body), body)
    assert not verify(WEBHOOK_SECRET, signed_at(now - 10 * 60, headers, body), body), "replay"
    assert not verify(WEBHOOK_SECRET, signed_at(now + 10 * 60, headers, body), body), "future"
    assert not verify(WEBHOOK_SECRET, {**headers, "webhook-timestamp": "soon"}, body)
    assert not verify(WEBHOOK_SECRET, headers, body + b" "), "tampered body"
