"""Every staff read of a subject (overview, audit trail, lookup by address, export) is an audit
event naming the reader; the export carries the GDPR Art. 15(1)(a)-(h) information and, scoped
to one guardian's consent, only that guardian's data."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from service.consent.retention import policy_of
from service.db.audit_events import verify_chain
from service.security.personal_data import normalize_email
from tests.support.flows import granted_consent
from tests.support.service import Service
from tests.support.stored_data import personal_traces

SUBJECT = "child-read-audit-1"
GUARDIAN = "read.audit.parent@example.com"
EARLIER_GUARDIAN = "earlier.read.audit@example.com"


async def _reads(db: asyncpg.Connection) -> list[tuple[str, str, str | None]]:
    rows = await db.fetch(
        "select actor, action, subject_id from audit_events "
        "where action in ('subject.viewed', 'subject.events_read', 'subject.looked_up', "
        "'subject.exported') order by id"
    )
    return [(r["actor"], r["action"], r["subject_id"]) for r in rows]


async def test_each_staff_read_is_an_audit_event_naming_the_reader(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    assert await _reads(db) == []

    overview = await svc.client.get(
        f"/v1/subjects/{SUBJECT}", headers=svc.staff("support", sub="ana")
    )
    assert overview.status_code == 200, overview.text
    trail = await svc.client.get(
        f"/v1/subjects/{SUBJECT}/events", headers=svc.staff("support", sub="bor")
    )
    assert trail.status_code == 200, trail.text
    # the trail read shows the reads before it, not itself
    assert [e["action"] for e in trail.json()["events"]][-1] == "subject.viewed"
    found = await svc.client.post(
        "/v1/subjects", json={"guardian_email": GUARDIAN}, headers=svc.staff("support", sub="cene")
    )
    assert [s["subject_id"] for s in found.json()["subjects"]] == [SUBJECT]
    missed = await svc.client.post(
        "/v1/subjects",
        json={"guardian_email": "nobody@example.com"},
        headers=svc.staff("support", sub="cene"),
    )
    assert missed.json()["subjects"] == []
    export = await svc.client.get(
        f"/v1/subjects/{SUBJECT}/export", headers=svc.staff("admin", sub="dora")
    )
    assert export.status_code == 200, export.text

    assert await _reads(db) == [
        ("staff:ana", "subject.viewed", SUBJECT),
        ("staff:bor", "subject.events_read", SUBJECT),
        ("staff:cene", "subject.looked_up", SUBJECT),
        ("staff:cene", "subject.looked_up", None),
        ("staff:dora", "subject.exported", SUBJECT),
    ]
    details = await db.fetchval(
        "select details from audit_events where action = 'subject.looked_up' and subject_id is null"
    )
    assert "nobody" not in str(details)
    assert (await verify_chain(db))[1] is None


async def test_the_export_carries_the_article_15_information(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    export = await svc.client.get(f"/v1/subjects/{SUBJECT}/export", headers=svc.staff("admin"))
    assert export.status_code == 200, export.text
    info = export.json()["information"]
    catalogue = svc.runtime.catalogue
    # (a) purposes and their legal basis
    assert [p["id"] for p in info["purposes"]] == catalogue.ids
    assert all(p["legal_basis"] for p in info["purposes"])
    # (b) categories: what the service stores and what each purpose uses
    codes = {c["code"] for c in info["categories"]}
    assert {"guardian_email", "subject_id"} <= codes
    assert {code for p in catalogue.purposes for code in p.data_categories} <= codes
    # (c) recipients, from the catalogue
    expected = [(p.id, r.name["en"]) for p in catalogue.purposes for r in p.recipients]
    assert [(r["purpose"], r["name"]) for r in info["recipients"]] == expected
    # (d) retention: the periods the sweeps enforce
    policy = policy_of(svc.runtime)
    retention = info["retention"]
    assert retention["ended_consent_days"] == policy.ended_consent.days
    assert retention["closed_request_days"] == policy.closed_request.days
    assert {p["purpose"]: p["days"] for p in retention["purposes"]} == {
        p.id: p.kept_for.days for p in policy.purposes
    }
    # (e) the rights, (f) the supervisory authority
    rights = [r["right"] for r in info["rights"]]
    for right in (
        "access",
        "rectification",
        "erasure",
        "restriction",
        "objection",
        "portability",
        "complaint",
    ):
        assert right in rights
    assert svc.settings.operator_email in info["how_to_exercise"]
    authority = svc.settings.operator_supervisory_authority
    assert info["supervisory_authority"] == {"name": authority.name, "url": authority.url}
    # (g) the source, (h) no automated decision-making
    assert svc.settings.operator_name in info["source"]
    assert info["automated_decision_making"]["used"] is False
    assert info["controller"][0]["value"] == svc.settings.operator_name

    slovenian = await svc.client.get(
        f"/v1/subjects/{SUBJECT}/export", params={"locale": "sl"}, headers=svc.staff("admin")
    )
    assert slovenian.json()["information"]["locale"] == "sl"
    assert slovenian.json()["information"]["source"] != info["source"]


async def test_an_export_scoped_to_a_consent_holds_only_its_guardians_data(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    earlier = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=EARLIER_GUARDIAN)
    svc.clock.advance(timedelta(hours=1))
    current = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    admin = svc.staff("admin")
    url = f"/v1/subjects/{SUBJECT}/export"

    full = (await svc.client.get(url, headers=admin)).json()
    assert full["guardian"] is None
    assert len(full["requests"]) == len(full["consents"]) == 2

    for consent_id, own, other in (
        (current.consent_id, GUARDIAN, EARLIER_GUARDIAN),
        (earlier.consent_id, EARLIER_GUARDIAN, GUARDIAN),
    ):
        scoped = await svc.client.get(url, params={"consent_id": consent_id}, headers=admin)
        assert scoped.status_code == 200, scoped.text
        body = scoped.json()
        assert [r["guardian_email"] for r in body["requests"]] == [normalize_email(own)]
        assert [c["id"] for c in body["consents"]] == [consent_id]
        assert normalize_email(other).lower() not in scoped.text.lower()
        assert body["data_requests"] == []

    unknown = await svc.client.get(
        url, params={"consent_id": "00000000-0000-4000-8000-000000000000"}, headers=admin
    )
    assert unknown.status_code == 404


async def test_reading_an_erased_subject_brings_no_subject_id_back(
    svc: Service, api: dict[str, str], mailbox: Any, db: asyncpg.Connection
) -> None:
    await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    erased = await svc.client.delete(f"/v1/subjects/{SUBJECT}", headers=svc.staff("admin"))
    assert erased.status_code == 200, erased.text
    for path in ("", "/events", "/export"):
        read = await svc.client.get(f"/v1/subjects/{SUBJECT}{path}", headers=svc.staff("admin"))
        assert read.status_code == 200, read.text
    assert [(actor, subject) for actor, _, subject in await _reads(db)] == [
        ("staff:alice", None)
    ] * 3
    assert await personal_traces(db, texts=[SUBJECT, GUARDIAN], dates=[]) == []
