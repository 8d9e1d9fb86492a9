"""Restriction of processing (GDPR Art. 18) through the staff API: while it lasts the check
allows no purpose, on every replica, whatever the consents say (even one given meanwhile); the
data stays; the app hears of it by signed webhooks; the audit trail names the staff member;
lifting it lets the check answer as before; erasure removes it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from service.clock import ManualClock
from service.db.check_cache import CheckRows
from service.db.invalidation import InvalidationListener
from tests.support.credentials import StaffKeys, make_api_key
from tests.support.flows import ALL_PURPOSES, GRANT_ALL, check, granted_consent, open_request
from tests.support.guardian_client import open_and_submit
from tests.support.service import Service, start_service
from tests.support.webhooks import WebhookReceiver, verified_payload, webhook_env

GUARDIAN = "Restrict.Parent@Example.com"
SUBJECT = "child-restrict-1"
REASON = "The guardian contests the birth date; restricted until it is verified."


@pytest.fixture
def svc_env(receiver: WebhookReceiver) -> dict[str, str]:
    return webhook_env(receiver)


def _restriction(subject_id: str = SUBJECT) -> str:
    return f"/v1/subjects/{subject_id}/restriction"


async def _answers(svc: Service, api: dict[str, str], subject_id: str = SUBJECT) -> set[Any]:
    """(allowed, status) for every purpose, as a set: one element when all answer alike."""
    answers = set()
    for purpose in ALL_PURPOSES:
        answer = await check(svc.client, api, subject_id, purpose)
        answers.add((answer["allowed"], answer["status"], answer["consent_id"], answer["token"]))
    return answers


async def _events(svc: Service, action: str, subject_id: str = SUBJECT) -> list[dict[str, Any]]:
    response = await svc.client.get(
        f"/v1/subjects/{subject_id}/events", headers=svc.staff("support")
    )
    assert response.status_code == 200, response.text
    return [e for e in response.json()["events"] if e["action"] == action]


async def test_a_restriction_stops_every_purpose_at_once_and_its_lift_restores_the_consent(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    receiver: WebhookReceiver,
    db: asyncpg.Connection,
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    await svc.worker.deliver_due()
    assert SUBJECT in _cached(svc)  # the granted answer is cached: the restriction must evict it

    response = await svc.client.post(
        _restriction(), json={"reason": f"  {REASON} "}, headers=svc.staff("support", sub="sam")
    )
    assert response.status_code == 201, response.text
    placed = response.json()
    assert placed["subject_id"] == SUBJECT
    assert placed["reason"] == REASON
    assert placed["restricted_by"] == "sam"
    assert placed["lifted_at"] is None

    # Right after the call, for every purpose: not allowed, restricted, no token to use.
    assert await _answers(svc, api) == {(False, "restricted", None, None)}
    # The data stays: the consent is still granted, the guardian's request still there.
    consent = await db.fetchrow("select status, token from consents where subject_id = $1", SUBJECT)
    assert consent["status"] == "granted"
    assert consent["token"] is not None
    overview = await svc.client.get(f"/v1/subjects/{SUBJECT}", headers=svc.staff("support"))
    assert overview.json()["restriction"]["reason"] == REASON
    assert overview.json()["consents"][0]["id"] == granted.consent_id

    # A second restriction is refused; the first one (and its reason) stays.
    again = await svc.client.post(
        _restriction(), json={"reason": "Another reason"}, headers=svc.staff("support", sub="ann")
    )
    assert again.status_code == 409, again.text
    assert again.headers["content-type"].startswith("application/problem+json")
    stored = await db.fetchrow("select * from subject_restrictions where subject_id = $1", SUBJECT)
    assert (stored["reason"], stored["restricted_by"]) == (REASON, "sam")

    export = await svc.client.get(f"/v1/subjects/{SUBJECT}/export", headers=svc.staff("admin"))
    assert export.status_code == 200, export.text
    assert export.json()["restriction"]["restricted_by"] == "sam"

    assert await svc.worker.deliver_due() >= 1
    [restricted] = receiver.of_type("subject.restricted")
    payload = verified_payload(restricted)
    assert payload["data"] == {"subject_id": SUBJECT, "status": "restricted"}
    assert REASON.encode() not in restricted.body  # staff's words stay with the operator

    [event] = await _events(svc, "subject.restricted")
    assert event["actor"] == "staff:sam"
    assert event["reason"] == REASON

    lifted = await svc.client.delete(_restriction(), headers=svc.staff("support", sub="ann"))
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["lifted_by"] == "ann"
    assert lifted.json()["reason"] == REASON
    assert lifted.json()["lifted_at"] is not None
    assert await _answers(svc, api) == {(True, "granted", granted.consent_id, consent["token"])}
    assert await db.fetchval("select count(*) from subject_restrictions") == 0

    # Nothing left to lift.
    none = await svc.client.delete(_restriction(), headers=svc.staff("support"))
    assert none.status_code == 404, none.text
    assert none.headers["content-type"].startswith("application/problem+json")

    assert await svc.worker.deliver_due() >= 1
    [unrestricted] = receiver.of_type("subject.unrestricted")
    assert verified_payload(unrestricted)["data"] == {
        "subject_id": SUBJECT,
        "status": "unrestricted",
    }
    [event] = await _events(svc, "subject.unrestricted")
    assert event["actor"] == "staff:ann"


async def test_a_consent_given_during_a_restriction_is_recorded_but_allows_nothing(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    _, link = await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    assert (await check(svc.client, api, SUBJECT))["status"] == "pending"
    response = await svc.client.post(
        _restriction(), json={"reason": REASON}, headers=svc.staff("support")
    )
    assert response.status_code == 201, response.text
    assert await _answers(svc, api) == {(False, "restricted", None, None)}

    # The guardian still answers their email: the grant is recorded, and allows nothing.
    result = await open_and_submit(svc.client, link, GRANT_ALL)
    assert result.status_code == 200, result.text
    assert (
        await db.fetchval("select status from consents where subject_id = $1", SUBJECT) == "granted"
    )
    assert await _answers(svc, api) == {(False, "restricted", None, None)}

    lifted = await svc.client.delete(_restriction(), headers=svc.staff("support"))
    assert lifted.status_code == 200, lifted.text
    assert {status for _, status, _, _ in await _answers(svc, api)} == {"granted"}


async def test_only_support_staff_may_restrict_or_lift(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    body = {"reason": REASON}
    app_key = {"Authorization": f"Bearer {await make_api_key(db)}"}
    for method in ("POST", "DELETE"):
        kwargs: dict[str, Any] = {"json": body} if method == "POST" else {}
        anonymous = await svc.client.request(method, _restriction(), **kwargs)
        assert anonymous.status_code == 401, anonymous.text
        assert "WWW-Authenticate" in anonymous.headers
        by_app = await svc.client.request(method, _restriction(), headers=app_key, **kwargs)
        assert by_app.status_code == 401, by_app.text
        for other_role in (svc.staff(), svc.staff("admin")):
            refused = await svc.client.request(method, _restriction(), headers=other_role, **kwargs)
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
    assert await db.fetchval("select count(*) from subject_restrictions") == 0
    assert (await check(svc.client, api, SUBJECT))["status"] == "pending"

    # A reason is required, and must say something.
    for bad in ({}, {"reason": "   "}, {"reason": "x"}, {"reason": REASON, "until": "never"}):
        refused = await svc.client.post(_restriction(), json=bad, headers=svc.staff("support"))
        assert refused.status_code == 422, (bad, refused.text)
    # A subject nothing is stored about cannot be restricted (a mistyped id restricts nobody).
    unknown = await svc.client.post(
        _restriction("child-never-seen"), json=body, headers=svc.staff("support")
    )
    assert unknown.status_code == 404, unknown.text
    assert await db.fetchval("select count(*) from subject_restrictions") == 0


async def test_erasing_a_restricted_subject_removes_its_restriction(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    placed = await svc.client.post(
        _restriction(), json={"reason": REASON}, headers=svc.staff("support")
    )
    assert placed.status_code == 201, placed.text
    erased = await svc.client.delete(f"/v1/subjects/{SUBJECT}", headers=svc.staff("admin"))
    assert erased.status_code == 200, erased.text
    assert await db.fetchval("select count(*) from subject_restrictions") == 0
    assert (
        await db.fetchval("select count(*) from audit_events where reason = $1", REASON) == 0
    )  # the restriction's event was redacted with the rest
    assert (await check(svc.client, api, SUBJECT))["status"] == "none"


# ---- every replica at once ---------------------------------------------------------------------


async def _until(predicate: Callable[[], bool], what: str) -> None:
    """Bounded wait for a background event (a notice); only giving up fails."""
    for _ in range(600):
        if predicate():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


def _cached(svc: Service) -> Any:
    check_rows: CheckRows = svc.app.state.check_rows
    return check_rows.cache


@asynccontextmanager
async def _replicas(
    base_env: dict[str, str], clock: ManualClock, staff_keys: StaffKeys
) -> AsyncIterator[tuple[Service, Service]]:
    async with (
        start_service(base_env, clock, staff_keys.env()) as first,
        start_service(base_env, clock, staff_keys.env()) as second,
    ):

        def listening() -> bool:
            listeners: list[InvalidationListener] = [
                first.app.state.listener,
                second.app.state.listener,
            ]
            return all(listener.healthy for listener in listeners)

        await _until(listening, "the listeners to connect")
        yield first, second


async def test_a_restriction_reaches_every_replicas_cached_answer(
    base_env: dict[str, str],
    clock: ManualClock,
    staff_keys: StaffKeys,
    api: dict[str, str],
    mailbox: Any,
    db: asyncpg.Connection,
) -> None:
    async with _replicas(base_env, clock, staff_keys) as (first, second):
        await granted_consent(first, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
        assert (await check(second.client, api, SUBJECT))["status"] == "granted"
        assert SUBJECT in _cached(second)  # the second replica answers from its cache

        placed = await first.client.post(
            _restriction(), json={"reason": REASON}, headers=first.staff("support")
        )
        assert placed.status_code == 201, placed.text
        assert await _answers(first, api) == {(False, "restricted", None, None)}
        await _until(lambda: SUBJECT not in _cached(second), "the notice on the other replica")
        assert await _answers(second, api) == {(False, "restricted", None, None)}

        lifted = await second.client.delete(_restriction(), headers=second.staff("support"))
        assert lifted.status_code == 200, lifted.text
        await _until(lambda: SUBJECT not in _cached(first), "the lift's notice")
        assert {status for _, status, _, _ in await _answers(first, api)} == {"granted"}

        # Whoever writes the row (here SQL typed by hand), every replica is told.
        assert (await check(second.client, api, SUBJECT))["status"] == "granted"
        await db.execute(
            "insert into subject_restrictions values ($1, 'typed by hand', 'dba', now())", SUBJECT
        )
        await _until(lambda: SUBJECT not in _cached(second), "the trigger's notice")
        assert (await check(second.client, api, SUBJECT))["status"] == "restricted"
