"""France: the child under 15 consents together with a parent (Loi Informatique et Libertés
Art. 45). The app attests the child's agreement with ``child_agreed``; without it nothing is
stored; with it the record, the audit trail, the export and the review page show it."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from service.i18n import translator
from service.security.personal_data import normalize_email
from tests.support.dates import birth_date_years_ago
from tests.support.flows import ALL_PURPOSES
from tests.support.guardian_client import guardian_link, path_of
from tests.support.problems import assert_problem
from tests.support.rendering import esc
from tests.support.service import Service

GUARDIAN = "joint.parent@example.com"
CHILD_AGREED_NOTE = (
    "Your child has agreed to this too. Where your child lives, the law asks the child and a "
    "parent to consent together; the app your child signed up with confirmed the child's "
    "agreement."
)


def body(svc: Service, subject_id: str, country: str = "FR", **extra: Any) -> dict[str, Any]:
    return {
        "subject_id": subject_id,
        "birth_date": birth_date_years_ago(svc.clock),
        "country": country,
        "guardian_email": GUARDIAN,
        "purposes": ALL_PURPOSES,
        **extra,
    }


async def test_the_age_gate_says_when_the_child_consents_too(
    svc: Service, api: dict[str, str]
) -> None:
    child = {"birth_date": birth_date_years_ago(svc.clock)}
    france = await svc.client.post("/v1/age-gate", json={**child, "country": "FR"}, headers=api)
    assert france.status_code == 200, france.text
    assert france.json()["joint_consent"] is True
    assert "Art. 45" in france.json()["joint_consent_basis"]
    slovenia = await svc.client.post("/v1/age-gate", json={**child, "country": "SI"}, headers=api)
    assert slovenia.json()["joint_consent"] is False
    assert slovenia.json()["joint_consent_basis"] is None


@pytest.mark.parametrize("child_agreed", [None, False])
async def test_a_french_request_without_the_childs_agreement_is_refused(
    svc: Service, api: dict[str, str], db: asyncpg.Connection, child_agreed: bool | None
) -> None:
    extra = {} if child_agreed is None else {"child_agreed": child_agreed}
    response = await svc.client.post(
        "/v1/consent-requests", json=body(svc, "child-fr-1", **extra), headers=api
    )
    problem = assert_problem(response, 422)
    assert problem["detail"].startswith("child_agreed: must be true")
    assert "Art. 45" in problem["detail"]
    assert await db.fetchval("select count(*) from consent_requests") == 0
    assert await db.fetchval("select count(*) from outbox") == 0
    assert await db.fetchval("select count(*) from audit_events") == 0


async def test_a_french_request_with_the_childs_agreement_is_stored_and_shown(
    svc: Service, api: dict[str, str], db: asyncpg.Connection, mailbox: Any
) -> None:
    subject = "child-fr-2"
    for locale in ("en", "sl"):
        response = await svc.client.post(
            "/v1/consent-requests",
            json=body(svc, subject, child_agreed=True, locale=locale),
            headers=api,
        )
        assert response.status_code == 201, response.text
        row = await db.fetchrow(
            "select joint_consent, child_agreed from consent_requests where id = $1::uuid",
            response.json()["id"],
        )
        assert (row["joint_consent"], row["child_agreed"]) == (True, True)

        mailbox.clear()
        assert await svc.worker.deliver_due() == 1
        [message] = mailbox.to(normalize_email(GUARDIAN))
        page = await svc.client.get(path_of(guardian_link(message.text)))
        assert page.status_code == 200
        note = translator(locale).gettext(CHILD_AGREED_NOTE)
        assert esc(note) in page.text
    assert translator("sl").gettext(CHILD_AGREED_NOTE) != CHILD_AGREED_NOTE

    events = await svc.client.get(f"/v1/subjects/{subject}/events", headers=svc.staff("support"))
    created = [e for e in events.json()["events"] if e["action"] == "request.created"]
    assert len(created) == 2
    for event in created:
        assert event["details"]["child_agreed"] is True
        assert "Art. 45" in event["details"]["joint_consent"]
    export = await svc.client.get(f"/v1/subjects/{subject}/export", headers=svc.staff("admin"))
    assert export.status_code == 200, export.text
    for request in export.json()["requests"]:
        assert (request["joint_consent"], request["child_agreed"]) == (True, True)


async def test_the_database_refuses_joint_consent_without_the_childs_agreement(
    svc: Service, api: dict[str, str], db: asyncpg.Connection
) -> None:
    response = await svc.client.post(
        "/v1/consent-requests", json=body(svc, "child-fr-3", child_agreed=True), headers=api
    )
    assert response.status_code == 201
    with pytest.raises(asyncpg.CheckViolationError, match="joint_consent_child_agreed"):
        await db.execute("update consent_requests set child_agreed = null")


async def test_the_grant_event_keeps_the_childs_agreement(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    from tests.support.flows import grant_via_link

    subject = "child-fr-4"
    response = await svc.client.post(
        "/v1/consent-requests", json=body(svc, subject, child_agreed=True), headers=api
    )
    assert response.status_code == 201
    assert await svc.worker.deliver_due() == 1
    [message] = mailbox.to(normalize_email(GUARDIAN))
    await grant_via_link(svc.client, guardian_link(message.text))
    events = await svc.client.get(f"/v1/subjects/{subject}/events", headers=svc.staff("support"))
    [granted] = [e for e in events.json()["events"] if e["action"] == "consent.granted"]
    assert granted["details"]["child_agreed"] is True


async def test_elsewhere_child_agreed_is_optional_and_kept_when_sent(
    svc: Service, api: dict[str, str], db: asyncpg.Connection, mailbox: Any
) -> None:
    plain = await svc.client.post(
        "/v1/consent-requests", json=body(svc, "child-si-1", country="SI"), headers=api
    )
    assert plain.status_code == 201, plain.text
    told = await svc.client.post(
        "/v1/consent-requests",
        json=body(svc, "child-si-2", country="SI", child_agreed=False),
        headers=api,
    )
    assert told.status_code == 201, told.text
    rows = await db.fetch(
        "select subject_id, joint_consent, child_agreed from consent_requests order by subject_id"
    )
    assert [tuple(r) for r in rows] == [("child-si-1", False, None), ("child-si-2", False, False)]
    assert await svc.worker.deliver_due() == 2
    for message in mailbox.to(normalize_email(GUARDIAN)):
        page = await svc.client.get(path_of(guardian_link(message.text)))
        assert esc(CHILD_AGREED_NOTE) not in page.text


async def test_child_agreed_must_be_a_boolean(svc: Service, api: dict[str, str]) -> None:
    response = await svc.client.post(
        "/v1/consent-requests", json=body(svc, "child-fr-5", child_agreed="yes"), headers=api
    )
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("application/problem+json")
