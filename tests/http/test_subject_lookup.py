"""Staff look a guardian's address up in a POST body, never in a URL: the former
``GET /v1/subjects?guardian_email=`` is refused with a message that says how, without echoing
the address."""

from __future__ import annotations

from typing import Any

from service.clock import ManualClock
from tests.support.dates import birth_date_years_ago
from tests.support.flows import create_request
from tests.support.problems import assert_problem
from tests.support.service import Service

ADDRESS = "lookup.parent@example.com"


async def test_the_lookup_takes_the_address_in_a_json_body(
    svc: Service, api: dict[str, str], clock: ManualClock
) -> None:
    await create_request(
        svc.client,
        api,
        subject_id="child-lookup",
        email=ADDRESS,
        birth_date=birth_date_years_ago(clock),
    )
    found = await svc.client.post(
        "/v1/subjects", json={"guardian_email": ADDRESS}, headers=svc.staff("support")
    )
    assert found.status_code == 200, found.text
    assert [match["subject_id"] for match in found.json()["subjects"]] == ["child-lookup"]
    assert "lookup.parent" not in found.text
    assert ADDRESS not in str(found.request.url)


async def test_the_address_in_a_url_is_refused_with_a_clear_message(svc: Service) -> None:
    response = await svc.client.get(
        "/v1/subjects", params={"guardian_email": ADDRESS}, headers=svc.staff("support")
    )
    problem = assert_problem(response, 400)
    assert "POST /v1/subjects" in problem["detail"]
    assert "guardian_email" in problem["detail"]
    assert "lookup.parent" not in response.text


async def test_the_body_is_validated(svc: Service) -> None:
    staff = svc.staff("support")
    bodies: list[tuple[Any, int]] = [
        ({"guardian_email": f"{ADDRESS}\n"}, 422),
        ({"guardian_email": ADDRESS, "subject_id": "child-1"}, 422),
        ({}, 422),
        ([ADDRESS], 400),
    ]
    for body, status in bodies:
        response = await svc.client.post("/v1/subjects", json=body, headers=staff)
        assert_problem(response, status)
