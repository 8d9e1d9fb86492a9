"""The contract integrators read: the served OpenAPI document is valid OpenAPI 3.1, every /v1
operation declares its credentials and the problems it answers, and /schema needs no network."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema_rs
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31

from service.http.contract import API_KEY, STAFF_TOKEN

PROBLEM = "application/problem+json"
PUBLIC = ("/healthz", "/readyz", "/metrics", "/.well-known/")


@pytest.fixture
async def served(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    methods = {"get", "post", "put", "patch", "delete"}
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in methods
    ]


def test_the_served_document_is_valid_openapi_3_1(served: dict[str, Any]) -> None:
    assert served["openapi"].startswith("3.1")
    errors = [str(error) for error in jsonschema_rs.validator_for(OPENAPI_31).iter_errors(served)]
    assert errors == []


def test_security_schemes_are_declared(served: dict[str, Any]) -> None:
    schemes = served["components"]["securitySchemes"]
    assert schemes[API_KEY]["type"] == "http"
    assert schemes[API_KEY]["scheme"] == "bearer"
    assert schemes[STAFF_TOKEN]["bearerFormat"] == "JWT"


def test_every_v1_operation_declares_its_security_and_problems(served: dict[str, Any]) -> None:
    v1 = [op for op in operations(served) if op[1].startswith("/v1/")]
    assert len(v1) >= 15
    for method, path, operation in v1:
        where = f"{method} {path}"
        security = operation.get("security")
        assert security, f"{where} declares no security"
        for requirement in security:
            assert set(requirement) <= {API_KEY, STAFF_TOKEN}, where
        responses = operation["responses"]
        for status in ("401", "403", "503"):
            assert status in responses, f"{where} does not document {status}"
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                content = response.get("content", {})
                assert list(content) == [PROBLEM], f"{where} {status} is not problem+json"
                assert content[PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
        assert "Retry-After" in responses["503"]["headers"], where
        assert "WWW-Authenticate" in responses["401"]["headers"], where
        if "requestBody" in operation:
            for status in ("400", "413", "415", "422"):
                assert status in responses, f"{where} takes JSON but does not document {status}"
        if operation.get("parameters"):
            assert "422" in responses, f"{where} has parameters but does not document 422"
        if "429" in responses:
            assert "Retry-After" in responses["429"]["headers"], where


def test_the_scopes_and_roles_are_the_guards(served: dict[str, Any]) -> None:
    paths = served["paths"]
    assert paths["/v1/consent-requests"]["post"]["security"] == [{API_KEY: ["consent:request"]}]
    assert paths["/v1/consents/check"]["get"]["security"] == [{API_KEY: ["consent:check"]}]
    assert paths["/v1/subjects/{subject_id}"]["delete"]["security"] == [
        {API_KEY: ["subject:erase"]},
        {STAFF_TOKEN: ["admin"]},
    ]
    assert paths["/v1/consent-requests/{request_id}/cancel"]["post"]["security"] == [
        {API_KEY: ["consent:request"]}
    ]
    assert paths["/v1/subjects/{subject_id}/restriction"]["post"]["security"] == [
        {STAFF_TOKEN: ["support"]}
    ]
    assert "409" in paths["/v1/consent-requests/{request_id}/cancel"]["post"]["responses"]
    assert "409" in paths["/v1/subjects/{subject_id}/restriction"]["post"]["responses"]
    assert "404" in paths["/v1/subjects/{subject_id}/restriction"]["delete"]["responses"]
    assert paths["/v1/consents/{consent_id}"]["get"]["security"] == [
        {API_KEY: ["consent:check"]},
        {STAFF_TOKEN: ["support"]},
        {STAFF_TOKEN: ["admin"]},
    ]
    assert "429" in paths["/v1/consent-requests"]["post"]["responses"]
    assert "409" in paths["/v1/consents/{consent_id}/revoke"]["post"]["responses"]


def test_public_operations_declare_no_security(served: dict[str, Any]) -> None:
    public = [op for op in operations(served) if op[1].startswith(PUBLIC)]
    assert public
    for method, path, operation in public:
        assert "security" not in operation, f"{method} {path}"
    assert "Retry-After" in served["paths"]["/readyz"]["get"]["responses"]["503"]["headers"]


def test_the_main_operations_have_examples(served: dict[str, Any]) -> None:
    paths = served["paths"]
    create = paths["/v1/consent-requests"]["post"]
    body = create["requestBody"]["content"]["application/json"]["examples"]["example"]["value"]
    assert body["guardian_email"]
    created = create["responses"]["201"]["content"]["application/json"]["examples"]
    assert created["example"]["value"]["status"] == "pending"
    check = paths["/v1/consents/check"]["get"]["responses"]["200"]["content"]
    assert check["application/json"]["examples"]["example"]["value"]["allowed"] is True
    age_gate = paths["/v1/age-gate"]["post"]["requestBody"]["content"]["application/json"]
    assert age_gate["examples"]["example"]["value"]["country"] == "SI"
    problem = create["responses"]["422"]["content"][PROBLEM]["examples"]["problem"]["value"]
    assert problem["status"] == 422


EXTERNAL = re.compile(r"""(?:src|href|url)\s*[=(]\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


async def test_the_docs_page_names_no_other_host(client: httpx.AsyncClient) -> None:
    page = await client.get("/schema")

    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "://" not in page.text
    assert not EXTERNAL.search(page.text)
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "://" not in policy
    assert "*" not in policy
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert referenced
    for reference in referenced:
        assert reference.startswith("/"), reference
        asset = await client.get(reference)
        assert asset.status_code == 200, reference
    init = await client.get("/schema/assets/init.js")
    assert "://" not in init.text
    assert "validatorUrl: null" in init.text


async def test_swagger_ui_licence_is_served_beside_it(client: httpx.AsyncClient) -> None:
    licence = await client.get("/schema/assets/LICENSE")
    assert licence.status_code == 200
    assert "Apache License" in licence.text
    assert (await client.get("/schema/assets/core.py")).status_code == 404
    assert (await client.get("/schema/assets/..%2F__init__.py")).status_code == 404
