"""The whole consent loop over HTTP, with real PostgreSQL and a real SMTP server."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import jwt

from service.worker import Worker
from tests.support.guardian_client import guardian_link, open_and_submit, path_of

CHILD = {
    "subject_id": "child-42",
    "birth_date": "2015-04-01",
    "country": "SI",
    "guardian_email": "Parent.One@Example.com",
    "purposes": ["tutoring", "progress_reports", "newsletter"],
}


def years_ago(years: int) -> str:
    today = date.today()
    return today.replace(year=today.year - years).isoformat()


async def request_consent(
    client: httpx.AsyncClient, auth: dict[str, str], **overrides: Any
) -> httpx.Response:
    return await client.post("/v1/consent-requests", json={**CHILD, **overrides}, headers=auth)


async def test_guardian_grants_some_purposes_then_withdraws(
    client: httpx.AsyncClient, auth: dict[str, str], worker: Worker, mailbox: Any
) -> None:
    gate = await client.post(
        "/v1/age-gate", json={"birth_date": CHILD["birth_date"], "country": "SI"}, headers=auth
    )
    assert gate.status_code == 200
    assert gate.json()["consent_required"] is True
    assert gate.json()["age_of_consent"] == 15

    created = await request_consent(client, auth, locale="sl")
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    assert created.json()["status"] == "pending"

    pending = await client.get(
        "/v1/consents/check?subject_id=child-42&purpose=tutoring", headers=auth
    )
    assert pending.json()["status"] == "pending"
    assert pending.json()["allowed"] is False

    assert await worker.deliver_due() == 1
    [message] = mailbox.to("Parent.One@example.com")
    assert "Inštrukcije" in message.text  # Slovenian, as the request asked
    link = guardian_link(message.text)

    result = await open_and_submit(
        client,
        link,
        {"decision": "grant", "purposes": ["tutoring", "newsletter"], "attestation": "yes"},
    )
    assert result.status_code == 200, result.text

    status = await client.get(f"/v1/consent-requests/{request_id}", headers=auth)
    assert status.json()["status"] == "granted"

    allowed = await client.get(
        "/v1/consents/check", params={"subject_id": "child-42", "purpose": "tutoring"}, headers=auth
    )
    body = allowed.json()
    assert body["allowed"] is True
    assert body["status"] == "granted"
    refused = await client.get(
        "/v1/consents/check",
        params={"subject_id": "child-42", "purpose": "progress_reports"},
        headers=auth,
    )
    assert refused.json()["allowed"] is False

    jwks = (await client.get("/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(body["token"])
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        body["token"],
        jwt.PyJWK(key).key,
        algorithms=["EdDSA"],
        audience="consent-clients",
        issuer="http://consent.test",
    )
    assert claims["sub"] == "child-42"
    assert claims["jti"] == body["consent_id"]
    assert claims["purposes"] == ["tutoring", "newsletter"]
    assert claims["jurisdiction"] == "SI"
    assert claims["method"] == "email_plus"
    assert claims["policy_version"]
    assert "@" not in claims["guardian"]
    assert claims["exp"] <= int(
        __import__("datetime").datetime(2030, 4, 1, tzinfo=__import__("datetime").UTC).timestamp()
    )

    mailbox.clear()
    assert await worker.deliver_due() == 1  # the email-plus confirmation
    [confirmation] = mailbox.to("Parent.One@example.com")
    withdraw_link = guardian_link(confirmation.text)
    assert "/guardian/withdraw/" in withdraw_link

    withdrawn = await open_and_submit(
        client, withdraw_link, {"confirm": "yes", "purposes": ["tutoring"]}
    )
    assert withdrawn.status_code == 200, withdrawn.text
    after = await client.get(
        "/v1/consents/check", params={"subject_id": "child-42", "purpose": "tutoring"}, headers=auth
    )
    assert after.json()["status"] == "withdrawn"
    assert after.json()["allowed"] is False
    assert await worker.deliver_due() == 1
    assert len(mailbox.to("Parent.One@example.com")) == 2
    assert path_of(withdraw_link).startswith("/guardian/withdraw/")
