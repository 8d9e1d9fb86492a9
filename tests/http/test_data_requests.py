"""Rights requests through the staff API: recorded with their due date, listed overdue first,
moved on to a final answer, audited, counted in /metrics, exported and erased with the subject."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from service.app import create_app
from service.clock import ManualClock
from service.db.audit_events import verify_chain
from service.dev.pgcluster import free_port
from service.settings import load_settings
from tests.support.problems import assert_problem
from tests.support.service import Service, serving

SUBJECT = "child-rights-request-1"
OTHER = "child-rights-request-2"
NOTE = "Mother Ana Novak called from +386 41 555 123; wants a copy of everything"
DAY = timedelta(days=1)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _last(weekday: int, before: datetime, *, weeks_back: int = 1) -> datetime:
    """10:00 UTC on the given weekday (Monday 0) at least ``weeks_back`` weeks before."""
    day = (before - timedelta(weeks=weeks_back)).replace(hour=10, minute=0, second=0)
    return day - timedelta(days=(day.weekday() - weekday) % 7)


async def _open(
    svc: Service, *, subject: str = SUBJECT, kind: str = "access", **fields: Any
) -> dict[str, Any]:
    body = {"subject_id": subject, "kind": kind, "channel": "staff_phone", **fields}
    response = await svc.client.post("/v1/data-requests", json=body, headers=svc.staff("support"))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _rows(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db.fetch("select * from data_requests order by created_at, id")


async def _events(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db.fetch(
        "select actor, action, from_status, to_status, reason, details from audit_events "
        "where action like 'data_request.%' order by id"
    )


async def test_a_request_is_recorded_open_and_due_ten_days_after_receipt(
    svc: Service, clock: ManualClock, db: asyncpg.Connection
) -> None:
    created = await _open(svc, note=NOTE)
    assert created["subject_id"] == SUBJECT
    assert created["kind"] == "access"
    assert created["channel"] == "staff_phone"
    assert created["status"] == "open"
    assert created["note"] == NOTE
    assert _moment(created["received_at"]) == clock.now()
    assert _moment(created["due_at"]) == clock.now() + 10 * DAY
    assert created["overdue"] is False
    assert created["answered_on_time"] is None
    assert created["handler"] == "alice"
    assert created["closed_at"] is None
    assert created["erased"] is False

    [row] = await _rows(db)
    assert row["id"] == uuid.UUID(created["id"])
    # the note is personal data: encrypted at rest like a guardian's address
    assert b"Novak" not in row["note_enc"]
    assert "Novak" not in str(dict(row))

    fetched = await svc.client.get(
        f"/v1/data-requests/{created['id']}", headers=svc.staff("support")
    )
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == created


async def test_a_letter_received_earlier_is_due_from_its_receipt(
    svc: Service, clock: ManualClock
) -> None:
    received = clock.now() - 3 * DAY
    created = await _open(svc, kind="erasure", channel="staff_letter", received_at=_iso(received))
    assert created["channel"] == "staff_letter"
    assert _moment(created["received_at"]) == received
    assert _moment(created["due_at"]) == received + 10 * DAY


@pytest.mark.parametrize(
    ("received_weekday", "due_in_days"),
    [
        (3, 7),  # Thursday: Fri, Mon, Tue, Wed, Thu
        (4, 7),  # Friday: Mon to Fri
        (5, 6),  # Saturday: the weekend does not count
        (0, 7),  # Monday: Tue to Fri, Mon
    ],
)
async def test_a_complaint_is_due_five_working_days_after_receipt(
    svc: Service, clock: ManualClock, received_weekday: int, due_in_days: int
) -> None:
    received = _last(received_weekday, clock.now())
    created = await _open(svc, kind="complaint", received_at=_iso(received))
    due = _moment(created["due_at"])
    assert due == received + due_in_days * DAY
    assert due.weekday() < 5


@pytest.fixture
def svc_env(request: pytest.FixtureRequest) -> dict[str, str]:
    return getattr(request, "param", {})


@pytest.mark.parametrize(
    "svc_env",
    [{"CONSENT_DATA_REQUEST_DUE_DAYS": "3", "CONSENT_COMPLAINT_DUE_WORKING_DAYS": "1"}],
    indirect=True,
)
async def test_the_due_periods_are_configuration(svc: Service, clock: ManualClock) -> None:
    received = _last(4, clock.now())  # a Friday
    access = await _open(svc, received_at=_iso(received))
    assert _moment(access["due_at"]) == received + 3 * DAY
    complaint = await _open(svc, kind="complaint", received_at=_iso(received))
    assert _moment(complaint["due_at"]) == received + 3 * DAY  # the Monday after


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"subject_id": SUBJECT, "kind": "access", "channel": "staff_phone", "x": 1}, 422),
        ({"subject_id": SUBJECT, "kind": "gossip", "channel": "staff_phone"}, 422),
        ({"subject_id": SUBJECT, "kind": "access", "channel": "carrier_pigeon"}, 422),
        ({"subject_id": "child 42", "kind": "access", "channel": "staff_phone"}, 422),
        ({"kind": "access", "channel": "staff_phone"}, 422),
        ({"subject_id": SUBJECT, "kind": "access", "channel": "staff_phone", "note": ""}, 422),
        ({"subject_id": SUBJECT, "kind": "access", "channel": "staff_phone", "note": "  "}, 422),
        (
            {"subject_id": SUBJECT, "kind": "access", "channel": "staff_phone", "note": "a\x00b"},
            422,
        ),
        (
            {
                "subject_id": SUBJECT,
                "kind": "access",
                "channel": "staff_phone",
                "received_at": "2026-01-05T10:00:00",  # no offset: which 10:00?
            },
            422,
        ),
        (
            {
                "subject_id": SUBJECT,
                "kind": "access",
                "channel": "staff_phone",
                "received_at": "yesterday",
            },
            422,
        ),
    ],
)
async def test_bad_input_is_a_problem_and_stores_nothing(
    svc: Service, db: asyncpg.Connection, body: dict[str, Any], status: int
) -> None:
    response = await svc.client.post("/v1/data-requests", json=body, headers=svc.staff("support"))
    assert_problem(response, status)
    assert await _rows(db) == []
    assert await _events(db) == []


@pytest.mark.parametrize(
    ("offset", "wording"),
    [(timedelta(seconds=1), "future"), (-91 * DAY, "90 days")],
)
async def test_received_at_must_be_past_and_recent(
    svc: Service, clock: ManualClock, db: asyncpg.Connection, offset: timedelta, wording: str
) -> None:
    body = {
        "subject_id": SUBJECT,
        "kind": "access",
        "channel": "staff_letter",
        "received_at": _iso(clock.now() + offset),
    }
    response = await svc.client.post("/v1/data-requests", json=body, headers=svc.staff("support"))
    assert wording in assert_problem(response, 422)["detail"]
    assert await _rows(db) == []


async def test_a_request_moves_on_to_done_and_then_stays_done(
    svc: Service, clock: ManualClock, db: asyncpg.Connection
) -> None:
    created = await _open(svc, note=NOTE)
    url = f"/v1/data-requests/{created['id']}"
    clock.advance(DAY)
    taken = await svc.client.patch(
        url, json={"status": "in_progress"}, headers=svc.staff("support", sub="bob")
    )
    assert taken.status_code == 200, taken.text
    assert taken.json()["status"] == "in_progress"
    assert taken.json()["handler"] == "bob"
    assert taken.json()["note"] == NOTE

    clock.advance(DAY)
    done = await svc.client.patch(
        url,
        json={"status": "done", "outcome": "Export sent to the guardian by post"},
        headers=svc.staff("support", sub="bob"),
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "done"
    assert body["outcome"] == "Export sent to the guardian by post"
    assert _moment(body["closed_at"]) == clock.now()
    assert body["answered_on_time"] is True
    assert body["overdue"] is False

    for change in ({"status": "in_progress"}, {"outcome": "more"}, {"status": "done"}):
        again = await svc.client.patch(url, json=change, headers=svc.staff("support"))
        problem = assert_problem(again, 409)
        assert problem["current_status"] == "done"
    [row] = await _rows(db)
    assert (row["status"], row["outcome"], row["handler"]) == (
        "done",
        "Export sent to the guardian by post",
        "bob",
    )


async def test_a_refusal_needs_its_reason_and_is_final(
    svc: Service, db: asyncpg.Connection
) -> None:
    created = await _open(svc, kind="objection")
    url = f"/v1/data-requests/{created['id']}"
    staff = svc.staff("support")
    missing = await svc.client.patch(url, json={"status": "refused"}, headers=staff)
    assert "refusal_reason" in assert_problem(missing, 422)["detail"]
    misplaced = await svc.client.patch(
        url, json={"status": "done", "refusal_reason": "no"}, headers=staff
    )
    assert_problem(misplaced, 422)
    for body, status in (
        ({}, 422),
        ({"status": None}, 422),
        ({"status": "closed"}, 422),
        ({"status": "done", "handler": "mallory"}, 422),
        ({"outcome": " "}, 422),
    ):
        assert_problem(await svc.client.patch(url, json=body, headers=staff), status)
    [row] = await _rows(db)
    assert (row["status"], row["refusal_reason"], row["updated_at"]) == (
        "open",
        None,
        row["created_at"],
    )

    refused = await svc.client.patch(
        url,
        json={"status": "refused", "refusal_reason": "The processing is required by law"},
        headers=staff,
    )
    assert refused.status_code == 200, refused.text
    assert refused.json()["refusal_reason"] == "The processing is required by law"
    reopened = await svc.client.patch(url, json={"status": "open"}, headers=staff)
    assert assert_problem(reopened, 409)["current_status"] == "refused"


async def test_a_request_in_progress_does_not_go_back_to_open(svc: Service) -> None:
    created = await _open(svc)
    url = f"/v1/data-requests/{created['id']}"
    staff = svc.staff("support")
    assert (
        await svc.client.patch(url, json={"status": "in_progress"}, headers=staff)
    ).status_code == 200
    back = await svc.client.patch(url, json={"status": "open"}, headers=staff)
    assert assert_problem(back, 409)["current_status"] == "in_progress"
    noted = await svc.client.patch(url, json={"note": "called back"}, headers=staff)
    assert noted.status_code == 200, noted.text
    assert (noted.json()["status"], noted.json()["note"]) == ("in_progress", "called back")


async def test_an_unknown_request_is_404(svc: Service) -> None:
    url = f"/v1/data-requests/{uuid.uuid4()}"
    assert_problem(await svc.client.get(url, headers=svc.staff("support")), 404)
    patched = await svc.client.patch(url, json={"status": "done"}, headers=svc.staff("support"))
    assert_problem(patched, 404)


async def test_the_list_puts_overdue_requests_first_and_filters(
    svc: Service, clock: ManualClock
) -> None:
    start = clock.now()
    late_access = await _open(svc, received_at=_iso(start - 12 * DAY))
    complaint = await _open(svc, kind="complaint", received_at=_iso(start - DAY))
    fresh_erasure = await _open(svc, subject=OTHER, kind="erasure")
    answered_late = await _open(svc, kind="rectification", received_at=_iso(start - 20 * DAY))
    closed = await svc.client.patch(
        f"/v1/data-requests/{answered_late['id']}",
        json={"status": "done", "outcome": "Corrected"},
        headers=svc.staff("support"),
    )
    assert closed.json()["answered_on_time"] is False
    staff = svc.staff("admin")  # reading the list is open to admins too

    async def ids(**params: Any) -> list[str]:
        response = await svc.client.get("/v1/data-requests", params=params, headers=staff)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["data_requests"]]

    assert await ids() == [
        late_access["id"],
        answered_late["id"],
        complaint["id"],
        fresh_erasure["id"],
    ]
    assert await ids(overdue="true") == [late_access["id"]]
    assert await ids(status="done") == [answered_late["id"]]
    assert await ids(kind="erasure") == [fresh_erasure["id"]]
    assert await ids(kind="access", status="open", overdue="false") == []

    # a week later the complaint (five working days) is overdue too, and listed first by due date
    clock.advance(7 * DAY)
    assert await ids(overdue="true") == [late_access["id"], complaint["id"]]
    listed = await svc.client.get("/v1/data-requests", params={"overdue": "true"}, headers=staff)
    assert all(item["overdue"] for item in listed.json()["data_requests"])


async def test_the_list_is_paged(svc: Service, clock: ManualClock) -> None:
    opened = [
        (await _open(svc, received_at=_iso(clock.now() - (5 - n) * DAY)))["id"] for n in range(5)
    ]
    staff = svc.staff("support")
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = await svc.client.get(
            "/v1/data-requests", params={"limit": 2, "offset": offset}, headers=staff
        )
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["data_requests"]) <= 2
        seen += [item["id"] for item in body["data_requests"]]
        offset = body["next_offset"]
    assert seen == opened
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"offset": 10_001}):
        assert_problem(await svc.client.get("/v1/data-requests", params=params, headers=staff), 422)
    for params in ({"status": "closed"}, {"kind": "gossip"}, {"overdue": "maybe"}):
        assert_problem(await svc.client.get("/v1/data-requests", params=params, headers=staff), 422)


async def test_only_support_staff_record_and_answer_requests(
    svc: Service, db: asyncpg.Connection
) -> None:
    created = await _open(svc)
    url = f"/v1/data-requests/{created['id']}"
    body = {"subject_id": SUBJECT, "kind": "access", "channel": "staff_email"}
    for headers, status in (({}, 401), ({"Authorization": "Bearer nonsense"}, 401)):
        assert_problem(
            await svc.client.post("/v1/data-requests", json=body, headers=headers), status
        )
        assert_problem(await svc.client.get("/v1/data-requests", headers=headers), status)
        assert_problem(await svc.client.get(url, headers=headers), status)
        assert_problem(
            await svc.client.patch(url, json={"status": "done"}, headers=headers), status
        )
    admin = svc.staff("admin")
    assert_problem(await svc.client.post("/v1/data-requests", json=body, headers=admin), 403)
    assert_problem(await svc.client.patch(url, json={"status": "done"}, headers=admin), 403)
    nobody = svc.staff()
    assert_problem(await svc.client.get("/v1/data-requests", headers=nobody), 403)
    assert_problem(await svc.client.get(url, headers=nobody), 403)
    assert [row["status"] for row in await _rows(db)] == ["open"]


async def test_every_change_is_an_audit_event_naming_the_staff_member(
    svc: Service, clock: ManualClock, db: asyncpg.Connection
) -> None:
    created = await _open(svc, note=NOTE)
    url = f"/v1/data-requests/{created['id']}"
    await svc.client.patch(
        url, json={"status": "in_progress"}, headers=svc.staff("support", sub="bob")
    )
    await svc.client.patch(
        url,
        json={"status": "refused", "refusal_reason": "Identity not confirmed"},
        headers=svc.staff("support", sub="carol"),
    )
    trail = await svc.client.get(f"/v1/subjects/{SUBJECT}/events", headers=svc.staff("support"))
    assert trail.status_code == 200, trail.text
    events = [
        (e["actor"], e["action"], e["from_status"], e["to_status"], e["reason"])
        for e in trail.json()["events"]
    ]
    assert events == [
        ("staff:alice", "data_request.opened", None, "open", None),
        ("staff:bob", "data_request.in_progress", "open", "in_progress", None),
        ("staff:carol", "data_request.refused", "in_progress", "refused", "Identity not confirmed"),
    ]
    for event in trail.json()["events"]:
        assert event["details"]["data_request_id"] == created["id"]
        assert "Novak" not in str(event)
    checked, broken = await verify_chain(db)
    assert (checked, broken) == (4, None)  # and the staff read of the trail


def sample(text: str, name: str) -> float:
    [line] = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(line.split()[1])


async def test_racing_answers_close_a_request_once(svc: Service, db: asyncpg.Connection) -> None:
    created = await _open(svc)
    url = f"/v1/data-requests/{created['id']}"
    answers = await asyncio.gather(
        *(
            svc.client.patch(url, json=body, headers=svc.staff("support", sub=sub))
            for sub, body in (
                ("bob", {"status": "done", "outcome": "Copy sent"}),
                ("carol", {"status": "refused", "refusal_reason": "Not the guardian"}),
                ("dave", {"status": "done", "outcome": "Copy sent again"}),
            )
        )
    )
    assert sorted(answer.status_code for answer in answers) == [200, 409, 409]
    [winner] = [answer.json() for answer in answers if answer.status_code == 200]
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["current_status"] == winner["status"]
    closing = [e["action"] for e in await _events(db) if e["to_status"] in ("done", "refused")]
    assert closing == [f"data_request.{winner['status']}"]


async def test_metrics_leave_the_counts_out_while_the_database_is_unreachable(
    base_env: dict[str, str], clock: ManualClock
) -> None:
    nowhere = f"postgresql://consent@127.0.0.1:{free_port()}/consent"
    app = create_app(load_settings({**base_env, "CONSENT_DATABASE_URL": nowhere}), clock=clock)
    async with serving(app) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert "consent_db_pool_max" in response.text
    assert "consent_data_requests" not in response.text


async def test_metrics_count_open_and_overdue_requests(svc: Service, clock: ManualClock) -> None:
    text = (await svc.client.get("/metrics")).text
    assert sample(text, "consent_data_requests_open") == 0
    assert sample(text, "consent_data_requests_overdue") == 0

    await _open(svc, received_at=_iso(clock.now() - 11 * DAY))
    await _open(svc, kind="complaint")
    taken = await _open(svc, kind="portability")
    done = await _open(svc, kind="restriction", received_at=_iso(clock.now() - 30 * DAY))
    staff = svc.staff("support")
    await svc.client.patch(
        f"/v1/data-requests/{taken['id']}", json={"status": "in_progress"}, headers=staff
    )
    await svc.client.patch(
        f"/v1/data-requests/{done['id']}", json={"status": "done"}, headers=staff
    )
    text = (await svc.client.get("/metrics")).text
    assert sample(text, "consent_data_requests_open") == 3
    assert sample(text, "consent_data_requests_overdue") == 1

    clock.advance(10 * DAY + timedelta(seconds=1))
    text = (await svc.client.get("/metrics")).text
    assert sample(text, "consent_data_requests_open") == 3
    assert sample(text, "consent_data_requests_overdue") == 3


async def test_the_export_holds_the_subjects_requests_and_erasure_keeps_only_the_fact(
    svc: Service, clock: ManualClock, db: asyncpg.Connection
) -> None:
    access = await _open(svc, note=NOTE)
    erasure = await _open(svc, kind="erasure", channel="staff_email", note="asked by email")
    answered = await svc.client.patch(
        f"/v1/data-requests/{access['id']}",
        json={"status": "done", "outcome": "Export sent"},
        headers=svc.staff("support"),
    )
    assert answered.status_code == 200, answered.text
    bystander = await _open(svc, subject=OTHER, note="the sibling's request")
    admin = svc.staff("admin")

    export = await svc.client.get(f"/v1/subjects/{SUBJECT}/export", headers=admin)
    assert export.status_code == 200, export.text
    exported = {item["id"]: item for item in export.json()["data_requests"]}
    assert set(exported) == {access["id"], erasure["id"]}
    assert exported[access["id"]]["note"] == NOTE
    assert exported[access["id"]]["outcome"] == "Export sent"

    clock.advance(DAY)
    erased = await svc.client.delete(f"/v1/subjects/{SUBJECT}", headers=admin)
    assert erased.status_code == 200, erased.text
    assert erased.json()["data_requests"] == 2

    rows = {str(row["id"]): row for row in await _rows(db)}
    for request_id in (access["id"], erasure["id"]):
        row = rows[request_id]
        assert (row["subject_id"], row["note_enc"], row["outcome"]) == (None, None, None)
        assert row["erased_at"] == clock.now()
    assert rows[access["id"]]["status"] == "done"
    assert rows[access["id"]]["closed_at"] <= rows[access["id"]]["due_at"]
    assert rows[bystander["id"]]["subject_id"] == OTHER
    assert rows[bystander["id"]]["note_enc"] is not None
    stored = str(await db.fetch("select * from data_requests")) + str(
        await db.fetch("select * from audit_events")
    )
    assert SUBJECT not in stored
    assert "Novak" not in stored

    # what remains is anonymous, and the erasure request itself is answered afterwards
    kept = await svc.client.get(f"/v1/data-requests/{access['id']}", headers=admin)
    assert kept.status_code == 200, kept.text
    assert kept.json()["subject_id"] is None
    assert kept.json()["note"] is None
    assert kept.json()["erased"] is True
    assert kept.json()["answered_on_time"] is True
    closed = await svc.client.patch(
        f"/v1/data-requests/{erasure['id']}",
        json={"status": "done", "outcome": "Erased everywhere"},
        headers=svc.staff("support"),
    )
    assert closed.status_code == 200, closed.text
    assert (closed.json()["status"], closed.json()["subject_id"]) == ("done", None)

    again = await svc.client.get(f"/v1/subjects/{SUBJECT}/export", headers=admin)
    assert again.json()["data_requests"] == []
    checked, broken = await verify_chain(db)
    assert broken is None
    assert checked > 0
