"""Helpers of the handoff's tests: a request body, and the parent's steps on /guardian/code."""

from __future__ import annotations

import re
from typing import Any

import httpx

from service.clock import ManualClock
from service.dev.mailcatcher import Mailbox
from service.worker import Worker
from tests.support.dates import birth_date_years_ago
from tests.support.guardian_client import page_csrf


def handoff_request_body(clock: ManualClock, subject_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "subject_id": subject_id,
        "birth_date": birth_date_years_ago(clock),
        "country": "SI",
        "purposes": ["tutoring", "progress_reports"],
        **extra,
    }


async def enter_code(client: httpx.AsyncClient, code: str) -> httpx.Response:
    token = await page_csrf(client, "/guardian/code")
    return await client.post("/guardian/code", data={"code": code, "_csrf_token": token})


async def give_address(client: httpx.AsyncClient, session_path: str, email: str) -> httpx.Response:
    token = await page_csrf(client, session_path)
    return await client.post(session_path, data={"email": email, "_csrf_token": token})


async def send_otp(client: httpx.AsyncClient, session_path: str, otp: str) -> httpx.Response:
    token = await page_csrf(client, f"{session_path}/confirm")
    return await client.post(f"{session_path}/confirm", data={"otp": otp, "_csrf_token": token})


async def emailed_otp(worker: Worker, mailbox: Mailbox, to: str) -> tuple[str, str]:
    """The one-time code in the latest email to ``to``, and that email's text."""
    assert await worker.deliver_due() >= 1
    message = mailbox.to(to)[-1]
    match = re.search(r"\b(\d{6})\b", message.text)
    assert match, message.text
    return match.group(1), message.text
