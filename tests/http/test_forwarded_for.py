"""The guardian pages' per-client limit behind a trusted proxy: the rightmost X-Forwarded-For
entry is the client; without CONSENT_TRUST_FORWARDED_FOR the header is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from service.clock import ManualClock
from service.security.tokens import new_link_token
from service.settings import Settings
from service.worker import Worker
from tests.support.credentials import bearer, make_api_key
from tests.support.dates import birth_date_years_ago
from tests.support.flows import GRANT_ALL, create_request, open_request
from tests.support.guardian_client import guardian_link, path_of, review_csrf
from tests.support.service import start_service


def fresh_minute(clock: ManualClock) -> None:
    """Start a fresh one-minute rate-limit window so every post of a test falls into it."""
    now = clock.now()
    clock.set(now.replace(second=0, microsecond=0) + timedelta(minutes=1))


async def _thirty_probes(
    client: httpx.AsyncClient, token: str, forwarded_for: Callable[[int], str]
) -> None:
    for i in range(30):
        probe = await client.post(
            f"/guardian/{new_link_token()}",
            data={"decision": "deny", "_csrf_token": token},
            headers={"X-Forwarded-For": forwarded_for(i)},
        )
        assert probe.status_code == 404, (i, probe.text[:200])


async def test_trusted_forwarded_for_limits_by_the_rightmost_entry(
    base_env: dict[str, str],
    clock: ManualClock,
    mailbox: Any,
    db: asyncpg.Connection,
) -> None:
    api = bearer(await make_api_key(db))
    async with start_service(base_env, clock, {"CONSENT_TRUST_FORWARDED_FOR": "true"}) as svc:
        fresh_minute(clock)
        request_id, link = await open_request(
            svc, api, mailbox, subject_id="child-xff-1", email="xff.trusted@example.com"
        )
        token = await review_csrf(svc.client, link)

        # The client forges the leftmost entries; our proxy appends the real address last.
        await _thirty_probes(svc.client, token, lambda i: f"198.18.0.{i}, 203.0.113.9")
        limited = await svc.client.post(
            path_of(link),
            data={**GRANT_ALL, "_csrf_token": token},
            headers={"X-Forwarded-For": "198.18.1.1, 203.0.113.9"},
        )
        assert limited.status_code == 429, limited.text[:300]
        assert 1 <= int(limited.headers["retry-after"]) <= 60

        # Another client behind the same proxy has a budget of its own.
        other = await svc.client.post(
            path_of(link),
            data={**GRANT_ALL, "_csrf_token": token},
            headers={"X-Forwarded-For": "203.0.113.9, 203.0.113.10"},
        )
        assert other.status_code == 200, other.text[:300]
        status = await svc.client.get(f"/v1/consent-requests/{request_id}", headers=api)
        assert status.json()["status"] == "granted"


async def test_forwarded_for_is_ignored_unless_trusted(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    settings: Settings,
) -> None:
    assert settings.trust_forwarded_for is False
    fresh_minute(clock)
    email = "xff.untrusted@example.com"
    request_id = await create_request(
        client, auth, subject_id="child-xff-2", email=email, birth_date=birth_date_years_ago(clock)
    )
    assert await worker.deliver_due() == 1
    link = guardian_link(mailbox.to(email)[-1].text)
    token = await review_csrf(client, link)

    await _thirty_probes(client, token, lambda i: f"198.18.2.{i}")
    limited = await client.post(
        path_of(link),
        data={**GRANT_ALL, "_csrf_token": token},
        headers={"X-Forwarded-For": "198.18.3.1, 203.0.113.77"},
    )
    assert limited.status_code == 429, limited.text[:300]
    status = await client.get(f"/v1/consent-requests/{request_id}", headers=auth)
    assert status.json()["status"] == "pending"
