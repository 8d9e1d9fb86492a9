"""Support unlocks a guardian link locked by refused form submissions: a review link (staff
API ``POST /v1/consent-requests/{id}/unlock``) and a withdrawal link (``POST
/v1/consents/{id}/unlock-withdrawal``). The count starts again, the unlock is an audit event
naming the staff member, and an unlock that has nothing to do is 409 and changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from service.consent import decisions, endings
from tests.support.flows import granted_consent, open_request
from tests.support.guardian_client import path_of
from tests.support.problems import assert_problem
from tests.support.service import Service

GUARDIAN = "unlock.parent@example.com"


async def _lock_review_link(svc: Service, link: str) -> None:
    for _ in range(decisions.MAX_FAILED_SUBMISSIONS):
        await svc.client.post(path_of(link), data={"decision": "grant"})
    assert (await svc.client.get(path_of(link))).status_code == 429


async def test_a_locked_review_link_is_unlocked_once_and_audited(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    request_id, link = await open_request(
        svc, api, mailbox, subject_id="child-unlock-1", email=GUARDIAN
    )
    path = f"/v1/consent-requests/{request_id}/unlock"
    not_locked = await svc.client.post(path, headers=svc.staff("support"))
    assert_problem(not_locked, 409)

    await _lock_review_link(svc, link)
    unlocked = await svc.client.post(path, headers=svc.staff("support", sub="mira"))
    assert unlocked.status_code == 200, unlocked.text
    assert unlocked.json()["status"] == "pending"
    assert (await svc.client.get(path_of(link))).status_code == 200
    assert (
        await db.fetchval(
            "select failed_submissions from consent_requests where id = $1::uuid", request_id
        )
        == 0
    )
    event = await db.fetchrow(
        "select actor, subject_id, details from audit_events where action = 'request.unlocked'"
    )
    assert event["actor"] == "staff:mira"
    assert event["subject_id"] == "child-unlock-1"

    again = await svc.client.post(path, headers=svc.staff("support"))
    assert_problem(again, 409)
    assert (
        await db.fetchval("select count(*) from audit_events where action = 'request.unlocked'")
        == 1
    )


async def test_a_decided_request_or_an_unknown_one_is_not_unlocked(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id="child-unlock-2", email=GUARDIAN)
    decided = await svc.client.post(
        f"/v1/consent-requests/{granted.request_id}/unlock", headers=svc.staff("support")
    )
    assert_problem(decided, 409)
    unknown = await svc.client.post(
        f"/v1/consent-requests/{uuid.uuid4()}/unlock", headers=svc.staff("support")
    )
    assert_problem(unknown, 404)
    anonymous = await svc.client.post(f"/v1/consent-requests/{granted.request_id}/unlock")
    assert anonymous.status_code == 401


async def test_a_locked_withdrawal_link_is_unlocked_before_its_hour_is_up(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id="child-unlock-3", email=GUARDIAN)
    path = f"/v1/consents/{granted.consent_id}/unlock-withdrawal"
    assert_problem(await svc.client.post(path, headers=svc.staff("support")), 409)
    for _ in range(endings.MAX_FAILED_WITHDRAWALS):
        await svc.client.post(granted.withdraw_path, data={"confirm": "yes"})
    assert (await svc.client.get(granted.withdraw_path)).status_code == 429

    unlocked = await svc.client.post(path, headers=svc.staff("support", sub="mira"))
    assert unlocked.status_code == 200, unlocked.text
    assert unlocked.json()["status"] == "granted"
    assert (await svc.client.get(granted.withdraw_path)).status_code == 200
    row = await db.fetchrow(
        "select withdraw_failed_submissions, withdraw_locked_until from consents "
        "where id = $1::uuid",
        granted.consent_id,
    )
    assert (row["withdraw_failed_submissions"], row["withdraw_locked_until"]) == (0, None)
    event = await db.fetchrow(
        "select actor from audit_events where action = 'consent.withdrawal_unlocked'"
    )
    assert event["actor"] == "staff:mira"
    assert_problem(await svc.client.post(path, headers=svc.staff("support")), 409)

    revoked = await svc.client.post(
        f"/v1/consents/{granted.consent_id}/revoke",
        json={"reason": "ended for the test"},
        headers=svc.staff("support"),
    )
    assert revoked.status_code == 200
    assert_problem(await svc.client.post(path, headers=svc.staff("support")), 409)
