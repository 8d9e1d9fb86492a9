"""Support staff revoke a consent: the record, the check, the guardian's email, the signed
webhook to a real receiver, conflicts, and a race of revocations against withdrawals."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from service.clock import ManualClock
from service.consent import endings
from service.consent.errors import LinkProblem
from service.db.audit_events import verify_chain
from service.http.problems import status_for
from service.security.personal_data import normalize_email
from tests.support.flows import (
    ALL_PURPOSES,
    check,
    granted_consent,
    withdraw_csrf,
    withdraw_via_form,
)
from tests.support.problems import assert_problem
from tests.support.service import Service, browser
from tests.support.webhooks import (
    WebhookReceiver,
    verified_payload,
    webhook_env,
)

GUARDIAN = "Revoke.Parent@Example.com"
RECIPIENT = normalize_email(GUARDIAN)
SUBJECT = "child-revoke-1"
REASON = "Guardian identity could not be confirmed by phone (ticket 4711)"


@pytest.fixture
def svc_env(receiver: WebhookReceiver) -> dict[str, str]:
    return webhook_env(receiver)


async def _grant(svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock) -> Any:
    return await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)


async def test_revoke_ends_the_consent_and_tells_the_guardian_and_the_app(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    receiver: WebhookReceiver,
    db: asyncpg.Connection,
) -> None:
    granted = await _grant(svc, api, mailbox, clock)
    await svc.worker.deliver_due()  # the confirmation email and the consent.granted webhook
    mailbox.clear()

    clock.advance(timedelta(minutes=5))
    response = await svc.client.post(
        f"/v1/consents/{granted.consent_id}/revoke",
        json={"reason": REASON},
        headers=svc.staff("support", sub="alice"),
    )
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["id"] == granted.consent_id
    assert record["subject_id"] == SUBJECT
    assert record["status"] == "revoked"
    assert record["end_reason"] == REASON
    assert record["ended_at"] is not None
    assert record["token"] is None  # a revoked consent hands out no token

    # The check knows at once, before any worker pass.
    for purpose in ("tutoring", "newsletter"):
        answer = await check(svc.client, api, SUBJECT, purpose)
        assert answer["status"] == "revoked"
        assert answer["allowed"] is False
        assert answer["token"] is None
    fetched = await svc.client.get(f"/v1/consents/{granted.consent_id}", headers=api)
    assert fetched.json()["status"] == "revoked"

    event = await db.fetchrow("select * from audit_events where action = 'consent.revoked'")
    assert event is not None
    assert event["actor"] == "staff:alice"
    assert event["reason"] == REASON
    assert (event["from_status"], event["to_status"]) == ("granted", "revoked")
    assert str(event["consent_id"]) == granted.consent_id

    assert await svc.worker.deliver_due() == 2  # the guardian's email and the webhook
    [email] = mailbox.to(RECIPIENT)
    # The internal reason stays in the trail; the guardian reads a neutral sentence.
    assert "Guardian identity could not be confirmed" not in email.text + email.html
    assert "Our support team ended the consent after reviewing it." in email.text

    [delivery] = receiver.of_type("consent.revoked")
    assert delivery.answered == 200
    payload = verified_payload(delivery)
    assert payload["type"] == "consent.revoked"
    assert payload["timestamp"]
    data = payload["data"]
    assert data["subject_id"] == SUBJECT
    assert data["consent_id"] == granted.consent_id
    assert data["status"] == "revoked"
    assert data["purposes"] == ["tutoring", "progress_reports", "newsletter"]
    raw = (delivery.body + repr(delivery.headers).encode()).lower()
    assert RECIPIENT.lower().encode() not in raw
    assert b"revoke.parent" not in raw
    # Every webhook the receiver got is signed; ids are unique per event.
    for seen in receiver.deliveries:
        verified_payload(seen)
    assert len({d.webhook_id for d in receiver.deliveries}) == len(receiver.deliveries)


async def test_webhooks_are_not_lost_when_a_consent_ends_before_they_went_out(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    receiver: WebhookReceiver,
) -> None:
    """The app must learn of the grant and of the revocation even when the worker had not yet
    delivered the grant's webhook when staff revoked (at least once: nothing is lost)."""
    granted = await _grant(svc, api, mailbox, clock)
    mailbox.clear()
    clock.advance(timedelta(seconds=1))
    response = await svc.client.post(
        f"/v1/consents/{granted.consent_id}/revoke",
        json={"reason": REASON},
        headers=svc.staff("support"),
    )
    assert response.status_code == 200, response.text
    await svc.worker.deliver_due()
    payloads = sorted(
        (verified_payload(d) for d in receiver.deliveries), key=lambda p: p["timestamp"]
    )
    assert [p["type"] for p in payloads] == ["consent.granted", "consent.revoked"]
    assert {p["data"]["consent_id"] for p in payloads} == {granted.consent_id}
    # The email-plus confirmation not yet sent would now be untrue; only the revocation goes.
    [email] = mailbox.to(RECIPIENT)
    assert "ended the consent" in email.text
    assert REASON not in email.text


async def test_revoking_a_consent_that_is_not_live_is_409_with_its_status(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    granted = await _grant(svc, api, mailbox, clock)
    withdrawn = await withdraw_via_form(svc.client, granted.withdraw_path)
    assert withdrawn.status_code == 200, withdrawn.text
    events = await db.fetchval("select count(*) from audit_events")

    response = await svc.client.post(
        f"/v1/consents/{granted.consent_id}/revoke",
        json={"reason": REASON},
        headers=svc.staff("support"),
    )
    problem = assert_problem(response, 409)
    assert problem["current_status"] == "withdrawn"
    assert await db.fetchval("select count(*) from audit_events") == events
    assert (await check(svc.client, api, SUBJECT))["status"] == "withdrawn"

    unknown = await svc.client.post(
        f"/v1/consents/{uuid.uuid4()}/revoke", json={"reason": REASON}, headers=svc.staff("support")
    )
    assert_problem(unknown, 404)


async def test_revoke_twice_is_409_revoked(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock
) -> None:
    granted = await _grant(svc, api, mailbox, clock)
    path = f"/v1/consents/{granted.consent_id}/revoke"
    first = await svc.client.post(path, json={"reason": REASON}, headers=svc.staff("support"))
    assert first.status_code == 200, first.text
    second = await svc.client.post(path, json={"reason": REASON}, headers=svc.staff("support"))
    assert assert_problem(second, 409)["current_status"] == "revoked"
    # The guardian cannot withdraw what staff revoked: the link is dead, not an error.
    page = await svc.client.get(granted.withdraw_path)
    assert page.status_code == 410


@pytest.mark.parametrize(
    "body",
    [{}, {"reason": ""}, {"reason": "no"}, {"reason": REASON, "extra": 1}, {"reason": 42}],
    ids=["missing", "empty", "too-short", "unknown-field", "wrong-type"],
)
async def test_revoke_needs_a_reason(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, body: dict[str, Any]
) -> None:
    granted = await _grant(svc, api, mailbox, clock)
    response = await svc.client.post(
        f"/v1/consents/{granted.consent_id}/revoke", json=body, headers=svc.staff("support")
    )
    assert response.status_code in {400, 422}, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await check(svc.client, api, SUBJECT))["status"] == "granted"


async def test_fifty_concurrent_revocations_and_withdrawals_end_the_consent_once(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
) -> None:
    granted = await _grant(svc, api, mailbox, clock)
    await svc.worker.deliver_due()
    path = f"/v1/consents/{granted.consent_id}/revoke"
    withdraw_token = granted.withdraw_path.rsplit("/", 1)[1]
    staff = svc.staff("support", sub="carol")

    async with browser(svc.app) as guardian:
        csrf = await withdraw_csrf(guardian, granted.withdraw_path)

        async def staff_revoke() -> tuple[str, int, Any]:
            response = await svc.client.post(path, json={"reason": REASON}, headers=staff)
            body = response.json() if response.status_code in {200, 409} else response.text
            return "revoke", response.status_code, body

        async def form_withdraw() -> tuple[str, int, Any]:
            response = await guardian.post(
                granted.withdraw_path,
                data={"confirm": "yes", "purposes": ALL_PURPOSES, "_csrf_token": csrf},
            )
            return "form", response.status_code, None

        async def direct_withdraw() -> tuple[str, int, Any]:
            async with svc.pool.acquire() as connection:
                try:
                    await endings.withdraw(connection, svc.runtime, withdraw_token)
                except LinkProblem as problem:
                    return "direct", status_for(problem), problem.reason
            return "direct", 200, None

        calls = [staff_revoke] * 25 + [form_withdraw] * 15 + [direct_withdraw] * 10
        random.Random(7).shuffle(calls)
        outcomes = await asyncio.gather(*(call() for call in calls))

    statuses = Counter((kind, status) for kind, status, _ in outcomes)
    winners = [(kind, body) for kind, status, body in outcomes if status == 200]
    assert len(winners) == 1, statuses
    allowed_losses = {("revoke", 409), ("form", 410), ("direct", 410)}
    losers = {key for key in statuses if key[1] != 200}
    assert losers <= allowed_losses, statuses

    final = await db.fetchval(
        "select status from consents where id = $1", uuid.UUID(granted.consent_id)
    )
    winner_kind = winners[0][0]
    assert final == ("revoked" if winner_kind == "revoke" else "withdrawn")
    for kind, status, body in outcomes:
        if (kind, status) == ("revoke", 409):
            assert body["current_status"] == final

    ends = await db.fetch(
        "select action, actor from audit_events "
        "where action in ('consent.revoked', 'consent.withdrawn')"
    )
    assert [row["action"] for row in ends] == [f"consent.{final}"]
    assert ends[0]["actor"] == ("staff:carol" if final == "revoked" else "guardian")
    topics = await db.fetch(
        "select topic from outbox where topic in "
        "('consent_revoked', 'consent_withdrawn', 'consent.revoked', 'consent.withdrawn')"
    )
    assert sorted(row["topic"] for row in topics) == sorted(
        [f"consent_{final}", f"consent.{final}"]
    )
    assert (await check(svc.client, api, SUBJECT))["status"] == final
    checked, broken = await verify_chain(db)
    assert broken is None
    assert checked == await db.fetchval("select count(*) from audit_events")


async def test_revoking_a_lapsed_consent_not_yet_swept_is_409_expired(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    """Past its expiry a consent is no longer live, whether or not the worker swept it yet:
    the check says expired, the guardian's withdrawal link is dead, and so is revocation."""
    granted = await _grant(svc, api, mailbox, clock)
    record = await svc.client.get(f"/v1/consents/{granted.consent_id}", headers=api)
    expires_at = datetime.fromisoformat(record.json()["expires_at"])
    clock.set(expires_at + timedelta(seconds=1))
    assert (await check(svc.client, api, SUBJECT))["status"] == "expired"
    assert (await svc.client.get(granted.withdraw_path)).status_code == 410

    response = await svc.client.post(
        f"/v1/consents/{granted.consent_id}/revoke",
        json={"reason": REASON},
        headers=svc.staff("support"),
    )
    assert assert_problem(response, 409)["current_status"] == "expired"
    assert not await db.fetchval(
        "select count(*) from audit_events where action = 'consent.revoked'"
    )
    assert (await check(svc.client, api, SUBJECT))["status"] == "expired"


async def test_consent_record_of_a_lapsed_consent_not_yet_swept_says_expired(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock
) -> None:
    """The record must not contradict the check: no 'granted' and no token after expiry."""
    granted = await _grant(svc, api, mailbox, clock)
    path = f"/v1/consents/{granted.consent_id}"
    expires_at = datetime.fromisoformat(
        (await svc.client.get(path, headers=api)).json()["expires_at"]
    )
    clock.set(expires_at + timedelta(seconds=1))
    assert (await check(svc.client, api, SUBJECT))["status"] == "expired"
    for headers in (api, svc.staff("support")):
        record = (await svc.client.get(path, headers=headers)).json()
        assert record["status"] == "expired"
        assert record["token"] is None
