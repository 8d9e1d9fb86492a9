"""The one rule for 400 versus 422, on every kind of JSON operation: 400 when no JSON object
can be read from the request, 422 when one was read and a field or parameter is wrong."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.problems import assert_problem
from tests.support.service import Service

UNREADABLE = {
    "empty": b"",
    "malformed": b'{"birth_date": 2015-04-01}',
    "truncated": b'{"birth_date": "2015-04-01", ',
    "array": b'["2015-04-01", "SI"]',
    "string": b'"2015-04-01"',
    "number": b"42",
    "null": b"null",
}
WRONG_FIELDS = {
    "missing field": {"birth_date": "2015-04-01"},
    "unknown field": {"birth_date": "2015-04-01", "country": "SI", "name": "Ana"},
    "wrong type": {"birth_date": 20150401, "country": "SI"},
    "too long": {"birth_date": "2015-04-01", "country": "SLOVENIA-X"},
    "impossible date": {"birth_date": "2015-02-30", "country": "SI"},
    "unknown country": {"birth_date": "2015-04-01", "country": "XX"},
}


@pytest.mark.parametrize("body", UNREADABLE.values(), ids=UNREADABLE.keys())
async def test_a_body_that_is_no_json_object_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], body: bytes
) -> None:
    response = await client.post(
        "/v1/age-gate", content=body, headers={**auth, "Content-Type": "application/json"}
    )
    assert_problem(response, 400, title=True)


@pytest.mark.parametrize("body", WRONG_FIELDS.values(), ids=WRONG_FIELDS.keys())
async def test_a_json_object_with_a_wrong_field_is_422(
    client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, object]
) -> None:
    response = await client.post(
        "/v1/age-gate",
        content=json.dumps(body).encode(),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert_problem(response, 422, title=True)


@pytest.mark.parametrize(
    "query",
    ["purpose=tutoring", "subject_id=child 1&purpose=tutoring", "subject_id=c-1&purpose=ads"],
    ids=["missing parameter", "invalid parameter", "unknown purpose"],
)
async def test_a_wrong_query_parameter_is_422(
    client: httpx.AsyncClient, auth: dict[str, str], query: str
) -> None:
    response = await client.get(f"/v1/consents/check?{query}", headers=auth)
    assert_problem(response, 422, title=True)


async def test_staff_operations_follow_the_same_rule(svc: Service) -> None:
    staff = {**svc.staff("support"), "Content-Type": "application/json"}
    not_an_object = await svc.client.post("/v1/data-requests", content=b"[]", headers=staff)
    wrong_kind = await svc.client.post(
        "/v1/data-requests",
        content=json.dumps({"subject_id": "c-1", "kind": "gossip", "channel": "staff_phone"}),
        headers=staff,
    )
    bad_limit = await svc.client.get("/v1/data-requests?limit=0", headers=staff)

    assert_problem(not_an_object, 400)
    problem = assert_problem(wrong_kind, 422)
    assert problem["errors"][0]["key"] == "kind"
    assert_problem(bad_limit, 422)
