"""The committed OpenAPI document is the one the code describes, and the docs are served."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.openapi_export import render_openapi
from service.settings import REPOSITORY_SCHEMAS_DIR

COMMITTED = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"

V1_PATHS = [
    "/v1/age-gate",
    "/v1/consent-requests",
    "/v1/consent-requests/{request_id}",
    "/v1/consents/check",
    "/v1/consents/{consent_id}",
    "/v1/consents/{consent_id}/revoke",
    "/v1/subjects/{subject_id}/events",
    "/v1/subjects/{subject_id}/export",
    "/v1/subjects/{subject_id}",
]


@pytest.fixture(scope="module")
def rendered() -> str:
    return render_openapi(REPOSITORY_SCHEMAS_DIR)


@pytest.fixture(scope="module")
def document(rendered: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(rendered)
    return parsed


def test_committed_document_is_current(rendered: str) -> None:
    assert COMMITTED.is_file(), "openapi/openapi.json is missing: run `consent-service openapi`"
    assert COMMITTED.read_text(encoding="utf-8") == rendered, (
        "openapi/openapi.json is out of date with the code: run `consent-service openapi` "
        "and commit the result"
    )


def test_rendering_is_deterministic(rendered: str) -> None:
    assert (
        render_openapi(REPOSITORY_SCHEMAS_DIR) == rendered
    )  # throwaway keys do not leak into the document


def test_document_describes_the_api(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"]
    paths = document["paths"]
    for path in [*V1_PATHS, "/healthz", "/readyz", "/metrics", "/.well-known/jwks.json"]:
        assert path in paths, f"{path} is not in the OpenAPI document"
    assert "post" in paths["/v1/consent-requests"]
    assert "get" in paths["/v1/consents/check"]
    assert "delete" in paths["/v1/subjects/{subject_id}"]
    check_parameters = {p["name"] for p in paths["/v1/consents/check"]["get"]["parameters"]}
    assert {"subject_id", "purpose"} <= check_parameters


def test_guardian_pages_and_docs_are_not_api_operations(document: dict[str, Any]) -> None:
    # guardian links carry secret tokens and answer HTML; they are not part of the machine API
    assert not [path for path in document["paths"] if path.startswith(("/guardian", "/static"))]


async def test_schema_serves_interactive_docs(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema", follow_redirects=True)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert "swagger" in response.text.lower()


async def test_served_document_matches_the_committed_paths(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    served = response.json()
    committed = json.loads(COMMITTED.read_text(encoding="utf-8")) if COMMITTED.is_file() else {}
    assert sorted(served["paths"]) == sorted(committed.get("paths", {}))
