"""Every error is RFC 9457 problem+json with a clear detail; a refused request writes nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx

from tests.support.problems import assert_problem as assert_detailed_problem
from tests.support.stored_data import NOTHING_STORED, REQUEST_TABLES, row_counts

VALID = {
    "subject_id": "child-7",
    "birth_date": "2015-04-01",
    "country": "SI",
    "guardian_email": "parent@example.com",
    "purposes": ["tutoring"],
}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Every problem here carries a title as well as a detail."""
    return assert_detailed_problem(response, status, title=True)


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


BAD_POSTS: dict[str, tuple[bytes, int, list[str]]] = {
    # name: (body, status, words of which the detail must contain one, ignoring case)
    "truncated json": (b'{"subject_id": "child-7", ', 400, ["json", "truncated"]),
    "malformed json": (b'{"subject_id": child-7}', 400, ["json"]),
    "not an object": (b'["child-7"]', 400, ["object"]),
    # Litestar reports a missing body as a bare KeyError text ("'data'"); a client must be
    # told what is wrong instead.
    "empty body": (b"", 400, ["body"]),
    "unknown field": (raw({**VALID, "child_name": "Ana"}), 422, ["child_name"]),
    "wrong type": (raw({**VALID, "purposes": "tutoring"}), 422, ["purposes"]),
    "number as subject": (raw({**VALID, "subject_id": 42}), 422, ["subject_id"]),
    # (guardian_email may be left out: the handoff then reaches the parent)
    "missing field": (
        raw({k: v for k, v in VALID.items() if k != "purposes"}),
        422,
        ["purposes"],
    ),
    "subject with spaces": (raw({**VALID, "subject_id": "child 7"}), 422, ["subject_id"]),
    "no purposes": (raw({**VALID, "purposes": []}), 422, ["purposes"]),
    "unknown purpose": (raw({**VALID, "purposes": ["ads"]}), 422, ["ads"]),
    "bad birth date": (raw({**VALID, "birth_date": "2015-13-45"}), 422, []),
    "unknown country": (raw({**VALID, "country": "XX"}), 422, []),
    "bad email": (raw({**VALID, "guardian_email": "not-an-email"}), 422, []),
}


async def test_bad_consent_requests_are_problems_and_write_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    # One app for all cases (starting one per case costs more than the cases); every case is
    # checked and all failures are reported together.
    failures = []
    for name, (body, status, words) in BAD_POSTS.items():
        response = await client.post(
            "/v1/consent-requests",
            content=body,
            headers={**auth, "Content-Type": "application/json", "Idempotency-Key": name},
        )
        try:
            problem = assert_problem(response, status)
            if words:
                detail = problem["detail"].lower()
                assert any(word.lower() in detail for word in words), (
                    f"the detail names none of {words}: {problem['detail']!r}"
                )
            assert await row_counts(db, REQUEST_TABLES) == NOTHING_STORED, (
                "a refused request wrote rows"
            )
        except AssertionError as exc:
            failures.append(f"{name}: {exc}".splitlines()[0])
    assert not failures, "\n".join(failures)


async def test_the_valid_body_of_these_tests_is_accepted(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    # the control: the bodies above differ from an accepted one by exactly the fault
    response = await client.post("/v1/consent-requests", json=VALID, headers=auth)
    assert response.status_code == 201, response.text
    assert (await row_counts(db, REQUEST_TABLES))["consent_requests"] == 1


async def test_body_over_64_kib_is_413_and_writes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    body = raw({**VALID, "locale": "x" * (64 * 1024)})
    assert len(body) > 64 * 1024

    response = await client.post(
        "/v1/consent-requests",
        content=body,
        headers={**auth, "Content-Type": "application/json"},
    )

    problem = assert_problem(response, 413)
    assert "64 KiB" in problem["detail"]
    assert await row_counts(db, REQUEST_TABLES) == NOTHING_STORED


async def test_unknown_route_is_404(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for path in ("/v1/nothing-here", "/nothing", "/v2/consents/check"):
        assert_problem(await client.get(path, headers=auth), 404)


async def test_wrong_method_is_405(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    assert_problem(await client.delete("/v1/consents/check", headers=auth), 405)
    response = await client.put("/v1/consent-requests", json=VALID, headers=auth)
    assert_problem(response, 405)
    assert "POST" in response.headers["allow"]


async def test_invalid_uuid_in_path_is_a_client_error(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for path in ("/v1/consent-requests/not-a-uuid", "/v1/consents/not-a-uuid", "/v1/consents/1"):
        response = await client.get(path, headers=auth)
        assert response.status_code in {400, 404}, (path, response.text)
        assert_problem(response, response.status_code)


async def test_unknown_ids_are_404(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for path in (f"/v1/consent-requests/{uuid.uuid4()}", f"/v1/consents/{uuid.uuid4()}"):
        assert_problem(await client.get(path, headers=auth), 404)


async def test_check_without_a_query_parameter_is_422(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    cases = [
        ("purpose=tutoring", {"subject_id"}),
        ("subject_id=child-7", {"purpose"}),
        ("", {"subject_id", "purpose"}),  # naming either one is enough
        ("subject_id=&purpose=tutoring", {"subject_id"}),  # empty counts as missing
    ]
    for query, missing in cases:
        response = await client.get(f"/v1/consents/check?{query}", headers=auth)
        problem = assert_problem(response, 422)
        assert any(name in problem["detail"] for name in missing), (query, problem)


async def test_check_with_an_unknown_purpose_is_422(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.get(
        "/v1/consents/check", params={"subject_id": "child-7", "purpose": "ads"}, headers=auth
    )
    problem = assert_problem(response, 422)
    assert "ads" in problem["detail"]
    assert "tutoring" in problem["detail"], "the detail lists the known purposes"


async def test_age_gate_errors_are_problems(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    unknown = await client.post(
        "/v1/age-gate", json={"birth_date": "2015-01-01", "country": "SI", "x": 1}, headers=auth
    )
    assert "x" in assert_problem(unknown, 422)["detail"]
    assert_problem(
        await client.post(
            "/v1/age-gate", json={"birth_date": "yesterday", "country": "SI"}, headers=auth
        ),
        422,
    )
    assert_problem(
        await client.post(
            "/v1/age-gate",
            content=b"birth_date=2015-01-01",
            headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
        ),
        415,
    )
