"""What the handoff tells the app and the audit trail: the app hears that the parent opened the
handoff (its screen may stop showing the code), staff read every step in the subject's trail
(the chain still verifies), and nothing about the parent's address is in either."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx
import pytest

from service.db.audit_events import verify_chain
from tests.support.dates import birth_date_years_ago
from tests.support.guardian_client import page_csrf
from tests.support.service import Service
from tests.support.webhooks import WebhookReceiver, verified_payload, webhook_env

SUBJECT = "child-handoff-events"
PARENT = "events.parent@example.com"


@pytest.fixture
def svc_env(receiver: WebhookReceiver) -> dict[str, str]:
    return webhook_env(receiver)


async def post_form(client: httpx.AsyncClient, page: str, action: str, **form: str) -> Any:
    token = await page_csrf(client, page)
    return await client.post(action, data={**form, "_csrf_token": token})


async def test_the_handoff_is_told_to_the_app_and_kept_in_the_trail(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    receiver: WebhookReceiver,
    db: asyncpg.Connection,
) -> None:
    created = await svc.client.post(
        "/v1/consent-requests",
        json={
            "subject_id": SUBJECT,
            "birth_date": birth_date_years_ago(svc.clock),
            "country": "SI",
            "purposes": ["tutoring"],
        },
        headers=api,
    )
    assert created.status_code == 201, created.text
    code = created.json()["handoff"]["code"]

    opened = await post_form(svc.client, "/guardian/code", "/guardian/code", code=code)
    assert opened.status_code == 303
    session = opened.headers["location"]
    sent = await post_form(svc.client, session, session, email=PARENT)
    assert sent.status_code == 303
    assert await svc.worker.deliver_due() >= 1
    otp = re.search(r"\b(\d{6})\b", mailbox.to(PARENT)[-1].text)
    assert otp
    confirmed = await post_form(svc.client, session, f"{session}/confirm", otp=otp.group(1))
    assert confirmed.status_code == 303

    [delivery] = receiver.of_type("consent.handoff_opened")
    payload = verified_payload(delivery)
    assert payload["data"]["subject_id"] == SUBJECT
    assert payload["data"]["request_id"] == created.json()["id"]
    assert payload["data"]["status"] == "pending"
    assert PARENT not in delivery.body.decode()

    trail = await svc.client.get(
        f"/v1/subjects/{SUBJECT}/events", headers=svc.staff("support", sub="bor")
    )
    assert trail.status_code == 200
    events = trail.json()["events"]
    actions = [event["action"] for event in events]
    assert actions[:4] == [
        "request.created",
        "consent_request.handoff_opened",
        "consent_request.handoff_code_sent",
        "consent_request.guardian_address_confirmed",
    ]
    assert {event["actor"] for event in events[1:4]} == {"guardian"}
    assert PARENT not in trail.text
    assert code not in trail.text
    checked, broken = await verify_chain(db)
    assert checked >= 4
    assert broken is None
