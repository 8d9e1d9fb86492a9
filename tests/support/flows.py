"""A consent's life driven the way the app and the guardian drive it over HTTP: open a request,
deliver its email, follow the emailed link, grant, check, withdraw."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from service.security.personal_data import normalize_email
from service.worker import Worker
from tests.support.dates import birth_date_years_ago
from tests.support.guardian_client import csrf_token, guardian_link, open_and_submit, page_csrf
from tests.support.service import Service

ALL_PURPOSES = ["tutoring", "progress_reports", "newsletter"]
GRANT_ALL = {"decision": "grant", "purposes": ALL_PURPOSES, "attestation": "yes"}
WITHDRAW_HREF = re.compile(r'href="(/guardian/withdraw/[A-Za-z0-9_-]+)"')
WITHDRAW_CHECKBOX = re.compile(
    r'<input type="checkbox" id="withdraw-[a-z0-9_]+" name="purposes" value="([a-z0-9_]+)"'
)


def request_body(subject_id: str, email: str, birth_date: str, **overrides: Any) -> dict[str, Any]:
    """A consent request for a Slovenian child and every purpose."""
    return {
        "subject_id": subject_id,
        "birth_date": birth_date,
        "country": "SI",
        "guardian_email": email,
        "purposes": ALL_PURPOSES,
        **overrides,
    }


async def create_request(
    client: httpx.AsyncClient,
    api: dict[str, str],
    *,
    subject_id: str,
    email: str,
    birth_date: str,
    **overrides: Any,
) -> uuid.UUID:
    """Open a consent request (201); return its id. Nothing is delivered."""
    response = await client.post(
        "/v1/consent-requests",
        json=request_body(subject_id, email, birth_date, **overrides),
        headers=api,
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


@dataclass(frozen=True)
class Granted:
    request_id: str
    consent_id: str
    withdraw_path: str


async def request_link(
    client: httpx.AsyncClient,
    worker: Worker,
    api: dict[str, str],
    mailbox: Any,
    *,
    subject_id: str,
    email: str,
    birth_date: str,
    only_email: bool = False,
) -> tuple[str, str]:
    """Open a consent request, deliver its email; return (request id, the emailed link).

    With ``only_email`` the guardian must have received exactly one email (this one)."""
    request_id = await create_request(
        client, api, subject_id=subject_id, email=email, birth_date=birth_date
    )
    assert await worker.deliver_due() >= 1
    messages = mailbox.to(normalize_email(email))
    if only_email:
        [message] = messages
    else:
        assert messages, f"no email reached {email}"
        message = messages[-1]
    return str(request_id), guardian_link(message.text)


async def open_request(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    *,
    subject_id: str,
    email: str,
    birth_date: str | None = None,
) -> tuple[str, str]:
    """``request_link`` through the service; the child is ten (``birth_date_years_ago``)
    unless ``birth_date`` says otherwise."""
    return await request_link(
        svc.client,
        svc.worker,
        api,
        mailbox,
        subject_id=subject_id,
        email=email,
        birth_date=birth_date if birth_date is not None else birth_date_years_ago(svc.clock),
    )


async def grant_via_link(client: httpx.AsyncClient, link: str) -> str:
    """Grant every purpose through the emailed link; return the withdrawal page's path."""
    result = await open_and_submit(client, link, GRANT_ALL)
    assert result.status_code == 200, result.text
    match = WITHDRAW_HREF.search(result.text)
    assert match, "the result page has no withdrawal link"
    return match.group(1)


async def granted_consent(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    *,
    subject_id: str,
    email: str,
    birth_date: str | None = None,
) -> Granted:
    request_id, link = await open_request(
        svc, api, mailbox, subject_id=subject_id, email=email, birth_date=birth_date
    )
    withdraw_path = await grant_via_link(svc.client, link)
    answer = await check(svc.client, api, subject_id)
    assert answer["status"] == "granted", answer
    return Granted(
        request_id=request_id, consent_id=str(answer["consent_id"]), withdraw_path=withdraw_path
    )


async def check(
    client: httpx.AsyncClient, api: dict[str, str], subject_id: str, purpose: str = "tutoring"
) -> dict[str, Any]:
    response = await client.get(
        "/v1/consents/check", params={"subject_id": subject_id, "purpose": purpose}, headers=api
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def withdraw_csrf(client: httpx.AsyncClient, withdraw_path: str) -> str:
    return await page_csrf(client, withdraw_path)


async def withdraw_via_form(
    client: httpx.AsyncClient, withdraw_path: str, **extra: str
) -> httpx.Response:
    """Withdraw every purpose the page offers (the whole consent)."""
    page = await client.get(withdraw_path)
    assert page.status_code == 200, page.text
    form = {"confirm": "yes", "purposes": WITHDRAW_CHECKBOX.findall(page.text), **extra}
    return await client.post(withdraw_path, data={**form, "_csrf_token": csrf_token(page.text)})
