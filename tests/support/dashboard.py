"""Helpers of the guardian dashboard's tests: a granted consent, asking for the sign-in link,
signing in."""

from __future__ import annotations

import re
from typing import Any

from service.security.personal_data import normalize_email
from tests.support.dates import birth_date_years_ago
from tests.support.flows import create_request, grant_via_link
from tests.support.guardian_client import csrf_token, guardian_link
from tests.support.service import Service, browser

SIGN_IN_LINK = re.compile(r"https?://[^\s<>\"]+(/guardian/sign-in/[A-Za-z0-9_-]+)")


async def granted_consent(
    svc: Service, api: dict[str, str], mailbox: Any, subject: str, email: str, hint: str
) -> str:
    """A consent for every purpose; returns its withdrawal path."""
    mailbox.clear()
    await create_request(
        svc.client,
        api,
        subject_id=subject,
        email=email,
        birth_date=birth_date_years_ago(svc.clock),
        child_hint=hint,
    )
    assert await svc.worker.deliver_due() >= 1
    [message] = mailbox.to(normalize_email(email))
    path = await grant_via_link(svc.client, guardian_link(message.text))
    await svc.worker.deliver_due()
    mailbox.clear()
    return path


async def ask_for_link(svc: Service, email: str) -> Any:
    """Ask for a sign-in link from a browser that is not signed in."""
    async with browser(svc.app) as client:
        form = await client.get("/guardian")
        assert form.status_code == 200, form.text
        return await client.post(
            "/guardian", data={"email": email, "_csrf_token": csrf_token(form.text)}
        )


async def sign_in_path(svc: Service, mailbox: Any, email: str) -> str:
    answer = await ask_for_link(svc, email)
    assert answer.status_code == 200, answer.text
    assert await svc.worker.deliver_due() == 1
    [message] = mailbox.to(normalize_email(email))
    match = SIGN_IN_LINK.search(message.text)
    assert match, message.text
    mailbox.clear()
    return match.group(1)


async def sign_in_dashboard(svc: Service, client: Any, path: str) -> Any:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return await client.post(path, data={"_csrf_token": csrf_token(page.text)})
