"""Data-subject rights through the staff API and the guardian's withdrawal page: a masked
overview, the audit trail, a full export, and erasure that leaves no trace of the guardian's
address or the child's birth date anywhere in the database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest

from service.clock import ManualClock
from service.db.audit_events import AUDIT_CHAIN_LOCK, verify_chain
from service.security.personal_data import normalize_email
from tests.support.dates import birth_date_years_ago
from tests.support.flows import (
    ALL_PURPOSES,
    GRANT_ALL,
    check,
    granted_consent,
    open_request,
    withdraw_csrf,
    withdraw_via_form,
)
from tests.support.guardian_client import csrf_token, path_of
from tests.support.service import Service
from tests.support.stored_data import personal_traces

GUARDIAN = "Erase.Me.Parent@Example.COM"
RECIPIENT = normalize_email(GUARDIAN)  # how it is stored and mailed: the domain lowercased
SUBJECT = "child-rights-1"
BYSTANDER = "child-rights-bystander"
BYSTANDER_GUARDIAN = "bystander.parent@example.com"


@pytest.fixture
def svc_env() -> dict[str, str]:
    # A delayed email-plus confirmation: still queued when the subject is erased. The
    # withdrawal page's opt-in erasure exists only when a withdrawal does not erase anyway.
    return {"CONSENT_CONFIRMATION_DELAY": "3600", "CONSENT_WITHDRAWAL_ERASES": "false"}


async def _granted(svc: Service, api: dict[str, str], mailbox: Any, birth: str) -> Any:
    return await granted_consent(
        svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN, birth_date=birth
    )


async def test_overview_masks_the_guardian_email(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock
) -> None:
    granted = await _granted(svc, api, mailbox, birth_date_years_ago(clock))
    response = await svc.client.get(f"/v1/subjects/{SUBJECT}", headers=svc.staff("support"))
    assert response.status_code == 200, response.text
    text = response.text.lower()
    assert RECIPIENT.lower() not in text
    assert "erase.me.parent" not in text
    body = response.json()
    [request] = body["requests"]
    assert request["id"] == granted.request_id
    assert request["guardian_email"] == "E***@e***.com"
    assert request["guardian"].startswith("g_")
    [consent] = body["consents"]
    assert consent["id"] == granted.consent_id
    assert consent["status"] == "granted"
    assert "token" not in consent


async def test_support_finds_a_childs_records_from_the_guardians_address(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock
) -> None:
    await _granted(svc, api, mailbox, birth_date_years_ago(clock))
    staff = svc.staff("support")
    # the parent on the phone spells the address in their own way
    found = await svc.client.post(
        "/v1/subjects", json={"guardian_email": "erase.me.parent@example.com"}, headers=staff
    )
    assert found.status_code == 200, found.text
    body = found.json()
    assert [match["subject_id"] for match in body["subjects"]] == [SUBJECT]
    assert body["subjects"][0]["requests"] == 1
    assert "erase.me.parent" not in found.text.lower()  # the answer carries it masked only

    nobody = await svc.client.post(
        "/v1/subjects", json={"guardian_email": "someone@example.com"}, headers=staff
    )
    assert nobody.json()["subjects"] == []
    assert (
        await svc.client.post("/v1/subjects", json={"guardian_email": "x"}, headers=staff)
    ).status_code == 422
    assert (
        await svc.client.post(
            "/v1/subjects", json={"guardian_email": "erase.me.parent@example.com"}, headers=api
        )
    ).status_code == 401


async def test_events_are_listed_oldest_first_with_actor_and_reason(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock
) -> None:
    granted = await _granted(svc, api, mailbox, birth_date_years_ago(clock))
    clock.advance(timedelta(hours=1))
    revoked = await svc.client.post(
        f"/v1/consents/{granted.consent_id}/revoke",
        json={"reason": "school asked us to pause the account"},
        headers=svc.staff("support", sub="dora"),
    )
    assert revoked.status_code == 200, revoked.text

    response = await svc.client.get(f"/v1/subjects/{SUBJECT}/events", headers=svc.staff("support"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["subject_id"] == SUBJECT
    events = body["events"]
    assert [e["action"] for e in events] == [
        "request.created",
        "consent.granted",
        "consent.revoked",
    ]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert [e["occurred_at"] for e in events] == sorted(e["occurred_at"] for e in events)
    assert all(e["actor"] for e in events)
    assert events[0]["actor"] == "app:signup"
    assert events[1]["actor"] == "guardian"
    assert events[1]["details"]["method"] == "email_plus"
    assert events[2]["actor"] == "staff:dora"
    assert events[2]["reason"] == "school asked us to pause the account"
    assert (events[2]["from_status"], events[2]["to_status"]) == ("granted", "revoked")
    assert RECIPIENT.lower() not in response.text.lower()


async def test_export_holds_everything_about_the_child_and_guardian(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock
) -> None:
    granted = await _granted(svc, api, mailbox, birth_date_years_ago(clock))
    forbidden = await svc.client.get(f"/v1/subjects/{SUBJECT}/export", headers=svc.staff("support"))
    assert forbidden.status_code == 403

    response = await svc.client.get(f"/v1/subjects/{SUBJECT}/export", headers=svc.staff("admin"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["subject_id"] == SUBJECT
    assert body["exported_at"]
    [request] = body["requests"]
    assert request["id"] == granted.request_id
    assert request["guardian_email"] == RECIPIENT
    assert request["status"] == "granted"
    assert request["purposes"] == ["tutoring", "progress_reports", "newsletter"]
    assert "guardian_email_enc" not in request
    [consent] = body["consents"]
    assert consent["id"] == granted.consent_id
    assert consent["token"]  # the consent receipt itself
    assert [e["action"] for e in body["events"]] == ["request.created", "consent.granted"]
    topics = sorted(m["topic"] for m in body["messages"])
    assert topics == ["consent_confirmation", "guardian_request"]
    statuses = {m["topic"]: m["status"] for m in body["messages"]}
    assert statuses == {"guardian_request": "sent", "consent_confirmation": "pending"}


async def assert_erased(
    svc: Service,
    db: asyncpg.Connection,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    birth: str,
    *,
    actor: str,
    withdraw_path: str,
) -> None:
    answer = await check(svc.client, api, SUBJECT)
    assert answer["status"] == "none"
    assert answer["allowed"] is False
    assert answer["consent_id"] is None

    export = await svc.client.get(f"/v1/subjects/{SUBJECT}/export", headers=svc.staff("admin"))
    assert export.status_code == 200, export.text
    body = export.json()
    assert (body["requests"], body["consents"], body["events"], body["messages"]) == (
        [],
        [],
        [],
        [],
    )
    overview = await svc.client.get(f"/v1/subjects/{SUBJECT}", headers=svc.staff("support"))
    assert overview.json() == {"subject_id": SUBJECT, "requests": [], "consents": []}
    assert (await svc.client.get(withdraw_path)).status_code == 404

    # No further email ever, not even the delayed confirmation that was queued.
    clock.advance(timedelta(hours=2))
    await svc.worker.sweep()
    await svc.worker.deliver_due()
    assert mailbox.to(RECIPIENT) == []

    # Nothing anywhere in the database: every text, jsonb, bytea (and date) column.
    traces = await personal_traces(
        db,
        texts=[RECIPIENT, GUARDIAN, "erase.me.parent", SUBJECT],
        dates=[date.fromisoformat(birth)],
    )
    assert traces == []

    tombstones = await db.fetch("select * from audit_events where action = 'subject.erased'")
    assert len(tombstones) == 1
    [tombstone] = tombstones
    assert tombstone["subject_id"] is None
    assert tombstone["request_id"] is None
    assert tombstone["consent_id"] is None
    assert tombstone["actor"] == actor
    checked, broken = await verify_chain(db)
    assert broken is None, broken
    assert checked == await db.fetchval("select count(*) from audit_events")

    # The other family is untouched.
    assert (await check(svc.client, api, BYSTANDER))["status"] == "pending"
    assert await db.fetchval(
        "select guardian_email_enc is not null from consent_requests where subject_id = $1",
        BYSTANDER,
    )


async def _bystander(svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock) -> None:
    await open_request(
        svc,
        api,
        mailbox,
        subject_id=BYSTANDER,
        email=BYSTANDER_GUARDIAN,
        birth_date=birth_date_years_ago(clock, years=8, day=3),
    )


async def test_staff_erasure_leaves_no_personal_data_anywhere(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    birth = birth_date_years_ago(clock)
    # A second request for the same child (the first superseded) and an idempotency record.
    superseded = await svc.client.post(
        "/v1/consent-requests",
        json={
            "subject_id": SUBJECT,
            "birth_date": birth,
            "country": "SI",
            "guardian_email": GUARDIAN,
            "purposes": ["tutoring"],
        },
        headers={**api, "Idempotency-Key": "rights-first-attempt"},
    )
    assert superseded.status_code == 201, superseded.text
    granted = await _granted(svc, api, mailbox, birth)
    await _bystander(svc, api, mailbox, clock)
    assert await db.fetchval(
        "select count(*) from outbox where subject_id = $1 and status = 'pending'", SUBJECT
    ), "the delayed confirmation should still be queued"
    mailbox.clear()
    # The scan below is not vacuous: it finds the subject and the bystander's pending birth date.
    assert "consent_requests.subject_id" in await personal_traces(db, texts=[SUBJECT])
    bystander_birth = date.fromisoformat(birth_date_years_ago(clock, years=8, day=3))
    assert await personal_traces(db, texts=[], dates=[bystander_birth]) == [
        "consent_requests.birth_date"
    ]

    forbidden = await svc.client.delete(f"/v1/subjects/{SUBJECT}", headers=svc.staff("support"))
    assert forbidden.status_code == 403
    response = await svc.client.delete(f"/v1/subjects/{SUBJECT}", headers=svc.staff("admin"))
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["subject_id"] == SUBJECT
    assert receipt["requests"] == 2
    assert receipt["consents"] == 1
    assert receipt["messages"] >= 2
    assert receipt["events_redacted"] >= 3

    await assert_erased(
        svc,
        db,
        api,
        mailbox,
        clock,
        birth,
        actor="staff:alice",
        withdraw_path=granted.withdraw_path,
    )


async def test_guardian_can_ask_for_erasure_on_the_withdrawal_page(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    birth = birth_date_years_ago(clock)
    granted = await _granted(svc, api, mailbox, birth)
    await _bystander(svc, api, mailbox, clock)
    mailbox.clear()

    page = await withdraw_via_form(svc.client, granted.withdraw_path, erase="yes")
    assert page.status_code == 200, page.text
    assert 'name="erase"' not in page.text  # the result page, not the form again

    await assert_erased(
        svc,
        db,
        api,
        mailbox,
        clock,
        birth,
        actor="guardian",
        withdraw_path=granted.withdraw_path,
    )
    # The withdrawal itself is on record, anonymously.
    withdrawn = await db.fetch("select * from audit_events where action = 'consent.withdrawn'")
    assert [row["subject_id"] for row in withdrawn] == [None]
    assert [row["redacted"] for row in withdrawn] == [True]


async def test_withdrawal_without_erasure_keeps_the_record(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock, db: asyncpg.Connection
) -> None:
    granted = await _granted(svc, api, mailbox, birth_date_years_ago(clock))
    page = await withdraw_via_form(svc.client, granted.withdraw_path)
    assert page.status_code == 200, page.text
    assert (await check(svc.client, api, SUBJECT))["status"] == "withdrawn"
    assert await db.fetchval(
        "select count(*) from consents where id = $1", uuid.UUID(granted.consent_id)
    )
    assert not await db.fetchval(
        "select count(*) from audit_events where action = 'subject.erased'"
    )


async def _wait_for_lock_wait(db: asyncpg.Connection, locktype: str, sessions: int = 1) -> None:
    """Until ``sessions`` others of this database wait for a lock of ``locktype`` (bounded)."""
    for _ in range(1000):
        waiting = await db.fetchval(
            """
            select count(*) from pg_locks l join pg_stat_activity a on a.pid = l.pid
            where not l.granted and l.locktype = $1 and a.datname = current_database()
            """,
            locktype,
        )
        if waiting >= sessions:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"no session started waiting for a {locktype} lock")


@pytest.mark.parametrize("action", ["revoke", "withdraw", "grant"])
async def test_erasure_racing_another_change_leaves_nothing_behind(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    clock: ManualClock,
    db: asyncpg.Connection,
    database_url: str,
    action: str,
) -> None:
    """A change to the child's consent is in flight while an admin erases the child. Whatever
    the interleaving, once both are done nothing personal may remain and no email may reach the
    guardian afterwards.

    The interleaving is forced with locks, not timing: the change is held just before its audit
    append (the test holds the chain lock), the erasure then runs into the change's row lock,
    and only then the change is let go."""
    birth = birth_date_years_ago(clock)
    if action == "grant":
        _, link = await open_request(
            svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN, birth_date=birth
        )
        page = await svc.client.get(path_of(link))
        change = svc.client.post(
            path_of(link), data={**GRANT_ALL, "_csrf_token": csrf_token(page.text)}
        )
    else:
        granted = await _granted(svc, api, mailbox, birth)
        clock.advance(timedelta(hours=2))
        await svc.worker.deliver_due()  # nothing of the grant still queued
        if action == "revoke":
            change = svc.client.post(
                f"/v1/consents/{granted.consent_id}/revoke",
                json={"reason": "racing an erasure"},
                headers=svc.staff("support"),
            )
        else:
            token = await withdraw_csrf(svc.client, granted.withdraw_path)
            change = svc.client.post(
                granted.withdraw_path,
                data={"confirm": "yes", "purposes": ALL_PURPOSES, "_csrf_token": token},
            )
    mailbox.clear()

    gate = await asyncpg.connect(database_url)
    try:
        await gate.execute("select pg_advisory_lock($1)", AUDIT_CHAIN_LOCK)
        changing = asyncio.create_task(change)
        await _wait_for_lock_wait(db, "advisory")  # the change waits at its audit append
        erasing = asyncio.create_task(
            svc.client.delete(f"/v1/subjects/{SUBJECT}", headers=svc.staff("admin"))
        )
        # the erasure waits for the change (on the subject's lock, then on its rows)
        await _wait_for_lock_wait(db, "advisory", sessions=2)
        await gate.execute("select pg_advisory_unlock($1)", AUDIT_CHAIN_LOCK)
        changed, erased = await asyncio.gather(changing, erasing)
    finally:
        await gate.close()
    assert changed.status_code == 200, changed.text
    assert erased.status_code == 200, erased.text

    clock.advance(timedelta(days=2))
    await svc.worker.deliver_due()
    assert mailbox.to(RECIPIENT) == []
    assert await db.fetchval("select count(*) from outbox where subject_id = $1", SUBJECT) == 0
    traces = await personal_traces(
        db, texts=[RECIPIENT, SUBJECT, "racing an erasure"], dates=[date.fromisoformat(birth)]
    )
    assert traces == []
    assert (await check(svc.client, api, SUBJECT))["status"] == "none"
    _, broken = await verify_chain(db)
    assert broken is None
