"""Staff views of a subject say what the check says: a lapse the worker has not swept yet is
already a lapse, and a request past its expiry is expired."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from service.clock import ManualClock
from tests.support.flows import check, granted_consent, open_request
from tests.support.service import Service

SUBJECT = "child-views-1"
GUARDIAN = "views.parent@example.com"
SECOND = timedelta(seconds=1)


async def test_overview_and_export_show_a_lapsed_consent_as_expired_before_the_sweep(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    record = await svc.client.get(f"/v1/consents/{granted.consent_id}", headers=api)
    clock.set(datetime.fromisoformat(record.json()["expires_at"]) + SECOND)

    assert (await check(svc.client, api, SUBJECT))["status"] == "expired"
    overview = await svc.client.get(f"/v1/subjects/{SUBJECT}", headers=svc.staff("support"))
    assert overview.status_code == 200, overview.text
    assert [c["status"] for c in overview.json()["consents"]] == ["expired"]
    assert [r["status"] for r in overview.json()["requests"]] == ["granted"]
    export = await svc.client.get(f"/v1/subjects/{SUBJECT}/export", headers=svc.staff("admin"))
    assert export.status_code == 200, export.text
    assert [c["status"] for c in export.json()["consents"]] == ["expired"]

    # the sweep then writes down what every view already said
    assert (await svc.worker.sweep())["lapsed_consents"] == 1
    again = await svc.client.get(f"/v1/subjects/{SUBJECT}", headers=svc.staff("support"))
    assert [c["status"] for c in again.json()["consents"]] == ["expired"]


async def test_overview_shows_an_unanswered_request_past_its_expiry_as_expired(
    svc: Service, api: dict[str, str], mailbox: Any, clock: ManualClock
) -> None:
    request_id, _ = await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    status = await svc.client.get(f"/v1/consent-requests/{request_id}", headers=api)
    clock.set(datetime.fromisoformat(status.json()["expires_at"]))

    overview = await svc.client.get(f"/v1/subjects/{SUBJECT}", headers=svc.staff("support"))
    assert [r["status"] for r in overview.json()["requests"]] == ["expired"]
    assert (await check(svc.client, api, SUBJECT))["status"] == "expired"
    again = await svc.client.get(f"/v1/consent-requests/{request_id}", headers=api)
    assert again.json()["status"] == "expired"
