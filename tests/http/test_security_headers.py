"""Every response carries ``X-Content-Type-Options: nosniff`` and, unless it chose its own
caching, ``Cache-Control: no-store``; with an https public URL also
``Strict-Transport-Security``. Checked on successes, errors before and after routing, the
admin export (decrypted guardian addresses), guardian pages and the operations endpoints."""

from __future__ import annotations

import httpx

from service.clock import ManualClock
from tests.support.credentials import StaffKeys
from tests.support.service import Service, start_service

CHECK = "/v1/consents/check?subject_id=child-1&purpose=tutoring"


async def _answers(service: Service, api: dict[str, str]) -> dict[str, httpx.Response]:
    client = service.client
    admin = service.staff("support", "admin")
    return {
        "check": await client.get(CHECK, headers=api),
        "no key": await client.get(CHECK),
        "bad query": await client.get("/v1/consents/check", headers=api),
        "unknown path": await client.get("/v1/nothing-here", headers=api),
        "wrong method": await client.delete(CHECK, headers=api),
        "export": await client.get("/v1/subjects/child-1/export", headers=admin),
        "audit trail": await client.get("/v1/subjects/child-1/events", headers=admin),
        "guardian page": await client.get(f"/guardian/{'x' * 43}"),
        "healthz": await client.get("/healthz"),
        "readyz": await client.get("/readyz"),
        "metrics": await client.get("/metrics"),
        "jwks": await client.get("/.well-known/jwks.json"),
    }


async def test_every_answer_is_nosniff_and_not_stored_and_no_hsts_over_http(
    svc: Service, api: dict[str, str]
) -> None:
    answers = await _answers(svc, api)
    assert answers["export"].status_code == 200, answers["export"].text
    for name, response in answers.items():
        assert response.headers.get("x-content-type-options") == "nosniff", name
        assert "strict-transport-security" not in response.headers, name
        if name != "jwks":
            assert response.headers.get("cache-control") == "no-store", name
    # A response that chose its own caching keeps it.
    assert answers["jwks"].headers["cache-control"] == "public, max-age=300"


async def test_an_https_public_url_adds_strict_transport_security(
    base_env: dict[str, str], clock: ManualClock, staff_keys: StaffKeys, api: dict[str, str]
) -> None:
    extra = {**staff_keys.env(), "CONSENT_PUBLIC_URL": "https://consent.example"}
    async with start_service(base_env, clock, extra) as service:
        answers = await _answers(service, api)
    for name, response in answers.items():
        assert response.headers.get("strict-transport-security") == "max-age=31536000", name
        assert response.headers.get("x-content-type-options") == "nosniff", name
