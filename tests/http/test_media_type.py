"""Every JSON endpoint answers any other Content-Type with 415 problem+json and writes nothing.

The endpoints come from the app's own OpenAPI document (every operation with a JSON request
body), so an endpoint added later is covered without being listed here.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from service.openapi_export import openapi_document
from service.settings import REPOSITORY_SCHEMAS_DIR
from tests.support.dates import birth_date_years_ago
from tests.support.flows import Granted, granted_consent, request_body
from tests.support.service import Service

BAD_CONTENT_TYPES = {
    "text/plain": "text/plain",
    "form": "application/x-www-form-urlencoded",
    "missing": None,
}
APP, STAFF = "main app", "staff"
CHILD = "media-child"
GUARDIAN = "media.guardian@example.com"


def _json_operations() -> list[tuple[str, str, list[str]]]:
    document = openapi_document(REPOSITORY_SCHEMAS_DIR)
    return [
        (method.upper(), path, operation.get("tags", []))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]


JSON_OPERATIONS = _json_operations()


def test_the_json_operations_are_found() -> None:
    found = {(method, path) for method, path, _ in JSON_OPERATIONS}
    assert {("POST", "/v1/consent-requests"), ("POST", "/v1/age-gate")} <= found


def _concrete(path: str, granted: Granted) -> str:
    values = {
        "consent_id": granted.consent_id,
        "subject_id": CHILD,
        "request_id": granted.request_id,
    }
    for name in path.split("{")[1:]:
        parameter = name.split("}")[0]
        path = path.replace(f"{{{parameter}}}", values.get(parameter, str(uuid.uuid4())))
    return path


def _body(method: str, path: str, svc: Service) -> dict[str, Any]:
    """A body the endpoint would accept as JSON (an unknown endpoint gets ``{}``)."""
    examples: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/v1/age-gate"): {"birth_date": birth_date_years_ago(svc.clock), "country": "SI"},
        ("POST", "/v1/consent-requests"): request_body(
            "media-other-child", "other.guardian@example.com", birth_date_years_ago(svc.clock)
        ),
        ("POST", "/v1/consents/{consent_id}/revoke"): {"reason": "asked by phone"},
        ("POST", "/v1/subjects"): {"guardian_email": GUARDIAN},
    }
    return examples.get((method, path), {})


def _credentials(svc: Service, api: dict[str, str], tags: list[str]) -> dict[str, str]:
    return svc.staff("support", "admin") if STAFF in tags and APP not in tags else api


async def _every_table(db: asyncpg.Connection) -> dict[str, int]:
    tables = await db.fetch(
        "select table_name from information_schema.tables "
        "where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name"
    )
    return {
        row["table_name"]: await db.fetchval(f'select count(*) from "{row["table_name"]}"')
        for row in tables
    }


@pytest.mark.parametrize("content_type", BAD_CONTENT_TYPES.values(), ids=BAD_CONTENT_TYPES.keys())
@pytest.mark.parametrize(
    ("method", "path", "tags"),
    JSON_OPERATIONS,
    ids=[f"{method} {path}" for method, path, _ in JSON_OPERATIONS],
)
async def test_a_json_endpoint_refuses_another_content_type_and_writes_nothing(
    svc: Service,
    api: dict[str, str],
    mailbox: Any,
    db: asyncpg.Connection,
    method: str,
    path: str,
    tags: list[str],
    content_type: str | None,
) -> None:
    granted = await granted_consent(svc, api, mailbox, subject_id=CHILD, email=GUARDIAN)
    url = _concrete(path, granted)
    body = svc.client.build_request("POST", "/", json=_body(method, path, svc)).content
    headers = {**_credentials(svc, api, tags), "Idempotency-Key": "media-type-key"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    before = await _every_table(db)

    request = svc.client.build_request(method, url, content=body, headers=headers)
    assert request.headers.get("Content-Type") == content_type
    response = await svc.client.send(request)

    assert response.status_code == 415, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 415
    assert "application/json" in problem["detail"]
    assert await _every_table(db) == before

    # The same request as JSON is no 415: the content type was what was refused.
    accepted = await svc.client.request(
        method,
        url,
        content=body,
        headers={**headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert accepted.status_code not in (415, 500), accepted.text


async def test_a_structured_json_media_type_is_json(
    svc: Service, api: dict[str, str], db: asyncpg.Connection
) -> None:
    response = await svc.client.post(
        "/v1/age-gate",
        content=b'{"birth_date": "2016-04-01", "country": "SI"}',
        headers={**api, "Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["consent_required"] is True


async def test_an_unauthenticated_request_is_refused_before_its_media_type(
    svc: Service, db: asyncpg.Connection
) -> None:
    response = await svc.client.post(
        "/v1/age-gate", content=b"birth_date=2016-04-01", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 401, response.text
