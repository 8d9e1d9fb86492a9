"""The main app's own levers, with its API key: erase a child whose account it deleted (scope
``subject:erase``), and cancel a consent request it no longer needs (``consent:request``) —
the guardian's address goes at once and the guardian's link says the request was cancelled."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from service.security.personal_data import normalize_email
from tests.support.credentials import bearer, make_api_key
from tests.support.dates import birth_date_years_ago
from tests.support.flows import GRANT_ALL, check, create_request, granted_consent, open_request
from tests.support.guardian_client import guardian_link, path_of, review_csrf
from tests.support.service import Service
from tests.support.webhooks import WebhookReceiver, verified_payload, webhook_env

GUARDIAN = "Lever.Parent@Example.com"
SUBJECT = "child-lever-1"


@pytest.fixture
def svc_env(receiver: WebhookReceiver) -> dict[str, str]:
    return webhook_env(receiver)


def _cancel(request_id: uuid.UUID | str) -> str:
    return f"/v1/consent-requests/{request_id}/cancel"


# ---- erasure by the app ------------------------------------------------------------------------


async def test_an_api_key_with_subject_erase_erases_a_child_and_is_named_in_the_audit_trail(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    eraser = bearer(await make_api_key(db, "subject:erase", name="accounts"))
    response = await svc.client.delete(f"/v1/subjects/{SUBJECT}", headers=eraser)
    assert response.status_code == 200, response.text
    assert response.json()["consents"] == 1
    assert await db.fetchval("select count(*) from consent_requests") == 0
    assert await db.fetchval("select count(*) from consents") == 0
    actor = await db.fetchval("select actor from audit_events where action = 'subject.erased'")
    assert actor == "app:accounts"
    assert (await check(svc.client, api, SUBJECT))["status"] == "none"


async def test_erasure_refuses_a_key_without_the_scope_and_staff_without_admin(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    checker = bearer(await make_api_key(db, "consent:check", "consent:request", name="signup"))
    for headers, status in (
        ({}, 401),
        (bearer("csk_" + "x" * 43), 401),
        (checker, 403),
        (svc.staff("support"), 403),
    ):
        response = await svc.client.delete(f"/v1/subjects/{SUBJECT}", headers=headers)
        assert response.status_code == status, (headers, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await check(svc.client, api, SUBJECT))["status"] == "granted"
    erasures = "select count(*) from audit_events where action = 'subject.erased'"
    assert await db.fetchval(erasures) == 0

    # Staff keep their way in: an admin erases, and is named.
    by_admin = await svc.client.delete(
        f"/v1/subjects/{SUBJECT}", headers=svc.staff("admin", sub="ann")
    )
    assert by_admin.status_code == 200, by_admin.text
    actor = await db.fetchval("select actor from audit_events where action = 'subject.erased'")
    assert actor == "staff:ann"


async def test_keys_create_offers_the_subject_erase_scope(db: asyncpg.Connection) -> None:
    await make_api_key(db, "subject:erase", name="accounts")
    scopes = await db.fetchval("select scopes from api_keys where name = 'accounts'")
    assert scopes == ["subject:erase"]
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "insert into api_keys (id, name, key_prefix, key_hash, scopes, created_at) "
            "values (gen_random_uuid(), 'x', 'csk_x', '\\x00', array['subject:everything'], now())"
        )


# ---- cancelling a request ----------------------------------------------------------------------


async def test_a_cancelled_request_loses_its_guardian_address_and_its_link_says_so(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    db: asyncpg.Connection,
    receiver: WebhookReceiver,
) -> None:
    request_id, link = await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    assert (await check(svc.client, api, SUBJECT))["status"] == "pending"

    response = await svc.client.post(_cancel(request_id), headers=api)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["subject_id"], body["status"]) == (request_id, SUBJECT, "cancelled")
    assert body["decided_at"] is not None

    row = await db.fetchrow("select * from consent_requests where id = $1", uuid.UUID(request_id))
    assert row["status"] == "cancelled"
    assert row["cancelled_by_app"] is True
    assert row["guardian_email_enc"] is None
    assert row["guardian_email_hash"] is None
    assert row["birth_date"] is None
    # The app's check no longer sees a request waiting.
    assert (await check(svc.client, api, SUBJECT))["status"] == "none"
    status = await svc.client.get(f"/v1/consent-requests/{request_id}", headers=api)
    assert status.json()["status"] == "cancelled"

    page = await svc.client.get(path_of(link))
    assert page.status_code == 410
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>This request was cancelled</h1>" in page.text
    assert "Your email address has been deleted." in page.text
    assert "replaced" not in page.text

    events = await db.fetch(
        "select actor, from_status, to_status from audit_events where action = 'request.cancelled'"
    )
    assert [tuple(e) for e in events] == [("app:signup", "pending", "cancelled")]

    await svc.worker.deliver_due()
    [cancelled] = receiver.of_type("consent.cancelled")
    data = verified_payload(cancelled)["data"]
    assert (data["subject_id"], data["request_id"], data["status"]) == (
        SUBJECT,
        request_id,
        "cancelled",
    )
    assert b"lever.parent" not in cancelled.body.lower()

    # Cancelled already: a conflict naming the status, nothing sent twice.
    again = await svc.client.post(_cancel(request_id), headers=api)
    assert again.status_code == 409, again.text
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["current_status"] == "cancelled"
    await svc.worker.deliver_due()
    assert len(receiver.of_type("consent.cancelled")) == 1


async def test_a_request_cancelled_before_its_email_went_out_never_reaches_the_guardian(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    request_id = await create_request(
        svc.client,
        api,
        subject_id=SUBJECT,
        email=GUARDIAN,
        birth_date=birth_date_years_ago(svc.clock),
        locale="sl",
    )
    response = await svc.client.post(_cancel(request_id), headers=api)
    assert response.status_code == 200, response.text
    await svc.worker.deliver_due()
    assert mailbox.to(normalize_email(GUARDIAN)) == []
    email = await db.fetchrow(
        "select status, payload_enc from outbox where related_id = $1 and kind = 'email'",
        request_id,
    )
    assert email["status"] == "cancelled"
    assert email["payload_enc"] is None


async def test_the_cancelled_page_speaks_the_requests_language(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    request_id = await create_request(
        svc.client,
        api,
        subject_id=SUBJECT,
        email=GUARDIAN,
        birth_date=birth_date_years_ago(svc.clock),
        locale="sl",
    )
    assert await svc.worker.deliver_due() >= 1
    [message] = mailbox.to(normalize_email(GUARDIAN))
    link = guardian_link(message.text)
    assert (await svc.client.post(_cancel(request_id), headers=api)).status_code == 200
    page = await svc.client.get(path_of(link))
    assert page.status_code == 410
    assert '<html lang="sl">' in page.text
    assert "<h1>Ta zahteva je bila preklicana</h1>" in page.text


async def test_only_a_pending_request_can_be_cancelled_and_only_with_the_scope(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    decided = await svc.client.post(_cancel(granted.request_id), headers=api)
    assert decided.status_code == 409, decided.text
    assert decided.json()["current_status"] == "granted"
    assert (await check(svc.client, api, SUBJECT))["status"] == "granted"
    row = await db.fetchrow(
        "select status, guardian_email_enc from consent_requests where id = $1",
        uuid.UUID(granted.request_id),
    )
    assert row["status"] == "granted"
    assert row["guardian_email_enc"] is not None

    unknown = await svc.client.post(_cancel(uuid.uuid4()), headers=api)
    assert unknown.status_code == 404, unknown.text
    assert unknown.headers["content-type"].startswith("application/problem+json")

    request_id = await create_request(
        svc.client,
        api,
        subject_id="child-lever-2",
        email=GUARDIAN,
        birth_date=birth_date_years_ago(svc.clock),
    )
    checker = bearer(await make_api_key(db, "consent:check", name="reader"))
    for headers, status in (({}, 401), (checker, 403), (svc.staff("admin"), 401)):
        refused = await svc.client.post(_cancel(request_id), headers=headers)
        assert refused.status_code == status, (headers, refused.text)
    assert (await check(svc.client, api, "child-lever-2"))["status"] == "pending"

    # Past its expiry (not yet swept) a request is expired, not cancellable.
    svc.clock.advance(timedelta(seconds=svc.settings.request_ttl + 1))
    expired = await svc.client.post(_cancel(request_id), headers=api)
    assert expired.status_code == 409, expired.text
    assert expired.json()["current_status"] == "expired"


async def test_a_cancel_racing_the_guardians_grant_leaves_one_consistent_outcome(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    for round_ in range(3):
        subject_id = f"child-lever-race-{round_}"
        request_id, link = await open_request(
            svc, api, mailbox, subject_id=subject_id, email=GUARDIAN
        )
        token = await review_csrf(svc.client, link)
        grant, cancel = await asyncio.gather(
            svc.client.post(path_of(link), data={**GRANT_ALL, "_csrf_token": token}),
            svc.client.post(_cancel(request_id), headers=api),
        )
        row = await db.fetchrow(
            "select status, guardian_email_enc from consent_requests where id = $1",
            uuid.UUID(request_id),
        )
        consents = await db.fetchval(
            "select count(*) from consents where subject_id = $1", subject_id
        )
        answer = (await check(svc.client, api, subject_id))["status"]
        if cancel.status_code == 200:
            assert grant.status_code == 410, grant.text
            assert (row["status"], row["guardian_email_enc"], consents) == ("cancelled", None, 0)
            assert answer == "none"
        else:
            assert cancel.status_code == 409, cancel.text
            assert cancel.json()["current_status"] == "granted"
            assert grant.status_code == 200, grant.text
            assert (row["status"], consents) == ("granted", 1)
            assert row["guardian_email_enc"] is not None
            assert answer == "granted"
