"""Every kind of rights request, received by letter, email or phone and recorded by support, goes
from submission to a final answer with its receipt and due date kept, and each step audited."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
import pytest

from service.clock import ManualClock
from service.states import DataRequestKind
from tests.support.service import Service

SUBJECT = "child-every-kind-1"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize("kind", list(DataRequestKind))
async def test_each_kind_goes_from_submission_to_done_on_time(
    svc: Service, clock: ManualClock, db: asyncpg.Connection, kind: DataRequestKind
) -> None:
    received = (clock.now() - timedelta(days=2)).replace(microsecond=0)
    body = {
        "subject_id": SUBJECT,
        "kind": kind,
        "channel": "staff_letter",
        "note": "Letter of 2 December, signed by the mother",
        "received_at": _iso(received),
    }
    created = await svc.client.post("/v1/data-requests", json=body, headers=svc.staff("support"))
    assert created.status_code == 201, created.text
    opened = created.json()
    assert (opened["kind"], opened["status"]) == (kind, "open")
    assert _moment(opened["received_at"]) == received
    assert _moment(opened["due_at"]) > received
    path = f"/v1/data-requests/{opened['id']}"

    started = await svc.client.patch(
        path, json={"status": "in_progress"}, headers=svc.staff("support")
    )
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "in_progress"

    clock.advance(timedelta(hours=3))
    done = await svc.client.patch(
        path,
        json={"status": "done", "outcome": f"{kind} answered by letter"},
        headers=svc.staff("support"),
    )
    assert done.status_code == 200, done.text
    answered = done.json()
    assert (answered["status"], answered["outcome"]) == ("done", f"{kind} answered by letter")
    # receipt and due date stay what they were: the deadline is judged against them
    assert (answered["received_at"], answered["due_at"]) == (
        opened["received_at"],
        opened["due_at"],
    )
    listed = await svc.client.get(
        "/v1/data-requests", params={"kind": kind, "status": "done"}, headers=svc.staff("admin")
    )
    assert [r["id"] for r in listed.json()["data_requests"]] == [opened["id"]]

    trail = await db.fetch(
        "select action, details->>'on_time' as on_time from audit_events "
        "where action like 'data_request.%' order by id"
    )
    assert [row["action"] for row in trail] == [
        "data_request.opened",
        "data_request.in_progress",
        "data_request.done",
    ]
    assert trail[-1]["on_time"] == "true"
