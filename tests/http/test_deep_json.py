"""A JSON body nested thousands of levels deep (20,000 arrays) is a 400 problem (the decoder's
RecursionError was a 500), on the main app's API and on the staff API, and nothing is stored."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest

from tests.support.problems import assert_problem
from tests.support.service import Service
from tests.support.stored_data import row_counts

DEPTH = 20_000
DEEP_BODIES = {
    "array": b"[" * DEPTH + b"]" * DEPTH,
    "in a field": b'{"subject_id": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
    # 12,000 objects deep stay under the 64 KiB body limit
    "objects": b'{"":' * 12_000 + b"1" + b"}" * 12_000,
}
JSON = {"Content-Type": "application/json"}


def assert_too_deep(response: httpx.Response) -> None:
    problem = assert_problem(response, 400, title=True)
    assert "nested too deeply" in problem["detail"]


@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
async def test_a_deep_consent_request_is_a_400_and_nothing_is_stored(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection, body: bytes
) -> None:
    before = await row_counts(db)
    response = await client.post("/v1/consent-requests", content=body, headers={**auth, **JSON})
    assert_too_deep(response)
    assert await row_counts(db) == before


async def test_a_deep_age_gate_query_is_a_400(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/age-gate", content=DEEP_BODIES["objects"], headers={**auth, **JSON}
    )
    assert_too_deep(response)


@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
async def test_a_deep_staff_revocation_is_a_400_and_nothing_is_stored(
    svc: Service, db: asyncpg.Connection, body: bytes
) -> None:
    before = await row_counts(db)
    response = await svc.client.post(
        f"/v1/consents/{uuid.uuid4()}/revoke",
        content=body,
        headers={**svc.staff("support"), **JSON},
    )
    assert_too_deep(response)
    assert await row_counts(db) == before
