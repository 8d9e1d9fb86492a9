"""Schemathesis against a real ``consent-service serve``: every operation of the committed OpenAPI
document answers no server error and only what the document says (status, content type, headers,
body schema), for generated valid and invalid input and along a consent's whole life.

Operations tagged ``main app`` are called with an API key holding both scopes, those tagged
``staff`` with a staff token holding both roles (an operation with both tags: with each), the
rest without a credential. The number of examples is bounded and generation is derandomized, so
every run sends the same requests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from service.clock import SystemClock
from service.dev.mailcatcher import MailCatcher
from service.dev.pgcluster import free_port
from service.security.staff_tokens import mint_dev_token
from service.settings import load_settings
from tests.support.credentials import OPERATOR_ENV, StaffKeys, bearer, make_api_key
from tests.support.databases import scratch_database, with_database
from tests.support.flows import ALL_PURPOSES, grant_via_link, request_body, request_link
from tests.support.processes import console_script, fetch, output, poll
from tests.support.service import worker_for

OPENAPI = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
EXAMPLES_PER_OPERATION = 25
EXCLUDED_CHECKS = [
    # Litestar 2's automatic OPTIONS answer lists the methods of only one of the handlers sharing
    # a path (litestar#4169, fixed in Litestar 3); OPTIONS is no operation of this API.
    schemathesis.checks.allow_header_conformance,
    # A request the document allows may still be refused: the domain's rules (a real birth date,
    # a known country and purpose) answer 422, and the document does not say that request bodies
    # refuse unknown fields (Litestar does not carry msgspec's forbid_unknown_fields into it).
    schemathesis.checks.positive_data_acceptance,
]
APP, STAFF = "main app", "staff"
GUARDIAN = "fuzz.guardian@example.com"
CHILD = "fuzz-child"

schema = schemathesis.openapi.from_path(OPENAPI)


@dataclass
class Target:
    """The running server, the credentials it accepts and what the tests sent it."""

    base_url: str
    credentials: dict[str, dict[str, str]]
    log: Path
    granted: dict[str, str]
    session: requests.Session = field(default_factory=requests.Session)

    def headers_for(self, operation: schemathesis.APIOperation) -> list[dict[str, str]]:
        """The credentials ``operation`` is called with (none when it is public)."""
        tags = operation.tags or []
        return [self.credentials[tag] for tag in (APP, STAFF) if tag in tags] or [{}]

    def call(self, case: schemathesis.Case, headers: dict[str, str]) -> Any:
        response = case.call_and_validate(
            base_url=self.base_url,
            session=self.session,
            headers=headers,
            excluded_checks=EXCLUDED_CHECKS,
        )
        return response


@pytest.fixture(scope="module")
async def target(
    postgres_admin_dsn: str,
    template_database: str,
    smtp_server: MailCatcher,
    key_files: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Target]:
    """``serve`` on a database of its own, with one consent granted through the guardian's link."""
    directory = tmp_path_factory.mktemp("fuzz")
    staff_keys = StaffKeys(directory)
    async with scratch_database(
        postgres_admin_dsn, "consent_fuzz", template=template_database
    ) as name:
        env = {
            "CONSENT_DATABASE_URL": with_database(postgres_admin_dsn, name),
            "CONSENT_SMTP_URL": smtp_server.url,
            "CONSENT_MAIL_FROM": "consent@tutoring.example",
            "CONSENT_PUBLIC_URL": "http://consent.test",
            "CONSENT_SIGNING_KEY_FILE": key_files["signing"],
            "CONSENT_DATA_KEY": key_files["data_key"],
            "CONSENT_CONFIRMATION_DELAY": "0",
            "TMPDIR": str(directory),
            **OPERATOR_ENV,
            **staff_keys.env(),
        }
        service_settings = load_settings(env)
        connection = await asyncpg.connect(service_settings.database_url)
        try:
            api = bearer(await make_api_key(connection))
        finally:
            await connection.close()
        staff = bearer(mint_dev_token(service_settings, sub="fuzz", roles=["support", "admin"]))
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        log = directory / "serve.log"
        serve = ("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
        async with console_script(*serve, env=env, log=log) as process:

            async def answers() -> bool:
                response = await fetch(f"{base_url}/healthz")
                return response is not None and response.status_code == 200

            await poll(answers, "the server to answer", process, log)
            async with (
                worker_for(service_settings, SystemClock()) as worker,
                httpx.AsyncClient(base_url=base_url, timeout=30) as client,
            ):
                request_id, link = await request_link(
                    client,
                    worker,
                    api,
                    smtp_server.mailbox,
                    subject_id=CHILD,
                    email=GUARDIAN,
                    birth_date=birth_date(),
                )
                await grant_via_link(client, link)
                check = await client.get(
                    "/v1/consents/check",
                    params={"subject_id": CHILD, "purpose": ALL_PURPOSES[0]},
                    headers=api,
                )
                assert check.status_code == 200, check.text
            granted = {"request_id": request_id, "consent_id": str(check.json()["consent_id"])}
            yield Target(base_url, {APP: api, STAFF: staff}, log, granted)


def birth_date() -> str:
    """A ten-year-old's: consent is required everywhere."""
    return date(date.today().year - 10, 6, 15).isoformat()


@pytest.fixture
def server(target: Target) -> Iterator[Target]:
    yield target
    assert "Traceback" not in output(target.log), output(target.log)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_are_answered_as_documented(
    case: schemathesis.Case, server: Target
) -> None:
    for headers in server.headers_for(case.operation):
        server.call(case, headers)


def test_a_consent_life_is_answered_as_documented(server: Target) -> None:
    """One request each operation must accept, in the order a consent lives, so that answers
    with real records (granted, revoked, exported, erased) are checked against the document."""
    granted = server.granted
    other_child = "fuzz-sibling"
    data_request: dict[str, str] = {}
    sibling_request: dict[str, str] = {}

    def the_data_request(**parts: Any) -> Callable[[], dict[str, Any]]:
        # its id is known once the step that records it has been answered
        return lambda: {"path_parameters": {"request_id": data_request["id"]}, **parts}

    steps: list[tuple[str, str, dict[str, Any] | Callable[[], dict[str, Any]], int]] = [
        ("GET", "/healthz", {}, 200),
        ("GET", "/readyz", {}, 200),
        ("GET", "/metrics", {}, 200),
        ("GET", "/.well-known/jwks.json", {}, 200),
        ("POST", "/v1/age-gate", {"body": {"birth_date": birth_date(), "country": "SI"}}, 200),
        (
            "POST",
            "/v1/consent-requests",
            {"body": request_body(other_child, GUARDIAN, birth_date())},
            201,
        ),
        ("GET", "/v1/consent-requests/{request_id}", {"path_parameters": granted}, 200),
        # the sibling's request is pending, and its handoff code unused: its QR code
        (
            "GET",
            "/v1/consent-requests/{request_id}/handoff.svg",
            lambda: {"path_parameters": sibling_request},
            200,
        ),
        # decided already: nobody to remind
        ("POST", "/v1/consent-requests/{request_id}/remind", {"path_parameters": granted}, 409),
        # decided already, and no link locked: nothing to unlock
        ("POST", "/v1/consent-requests/{request_id}/unlock", {"path_parameters": granted}, 409),
        (
            "POST",
            "/v1/consents/{consent_id}/unlock-withdrawal",
            {"path_parameters": granted},
            409,
        ),
        (
            "POST",
            "/v1/consent-requests/{request_id}/cancel",
            lambda: {"path_parameters": sibling_request},
            200,
        ),
        (
            "GET",
            "/v1/consents/check",
            {"query": {"subject_id": CHILD, "purpose": ALL_PURPOSES[0]}},
            200,
        ),
        ("GET", "/v1/consents/{consent_id}", {"path_parameters": granted}, 200),
        ("POST", "/v1/subjects", {"body": {"guardian_email": GUARDIAN}}, 200),
        ("GET", "/v1/subjects", {}, 400),
        ("GET", "/v1/subjects/{subject_id}", {"path_parameters": {"subject_id": CHILD}}, 200),
        (
            "GET",
            "/v1/subjects/{subject_id}/events",
            {"path_parameters": {"subject_id": CHILD}},
            200,
        ),
        (
            "POST",
            "/v1/consents/{consent_id}/guardian-email",
            {"path_parameters": granted, "body": {"email": "fuzz.new.guardian@example.com"}},
            202,
        ),
        (
            "POST",
            "/v1/subjects/{subject_id}/birth-date",
            {"path_parameters": {"subject_id": CHILD}, "body": {"birth_date": birth_date()}},
            200,
        ),
        (
            "POST",
            "/v1/subjects/{subject_id}/restriction",
            {"path_parameters": {"subject_id": CHILD}, "body": {"reason": "accuracy contested"}},
            201,
        ),
        (
            "GET",
            "/v1/consents/check",
            {"query": {"subject_id": CHILD, "purpose": ALL_PURPOSES[0]}},
            200,
        ),
        (
            "DELETE",
            "/v1/subjects/{subject_id}/restriction",
            {"path_parameters": {"subject_id": CHILD}},
            200,
        ),
        (
            "POST",
            "/v1/consents/{consent_id}/revoke",
            {"path_parameters": granted, "body": {"reason": "guardian asked by phone"}},
            200,
        ),
        (
            "GET",
            "/v1/consents/check",
            {"query": {"subject_id": CHILD, "purpose": ALL_PURPOSES[0]}},
            200,
        ),
        (
            "POST",
            "/v1/data-requests",
            {
                "body": {
                    "subject_id": CHILD,
                    "kind": "access",
                    "channel": "staff_phone",
                    "note": "x",
                }
            },
            201,
        ),
        ("GET", "/v1/data-requests", {"query": {"overdue": "false", "limit": 10}}, 200),
        ("GET", "/v1/data-requests/{request_id}", the_data_request(), 200),
        (
            "PATCH",
            "/v1/data-requests/{request_id}",
            the_data_request(body={"status": "done", "outcome": "export sent"}),
            200,
        ),
        (
            "PATCH",
            "/v1/data-requests/{request_id}",
            the_data_request(body={"status": "in_progress"}),
            409,
        ),
        (
            "GET",
            "/v1/subjects/{subject_id}/export",
            {"path_parameters": {"subject_id": CHILD}},
            200,
        ),
        ("DELETE", "/v1/subjects/{subject_id}", {"path_parameters": {"subject_id": CHILD}}, 200),
        ("GET", "/v1/subjects/{subject_id}", {"path_parameters": {"subject_id": CHILD}}, 200),
    ]
    for method, path, parts, status in steps:
        operation = schema[path][method]
        for headers in server.headers_for(operation):
            case = operation.Case(**(parts() if callable(parts) else parts))
            response = server.call(case, headers)
            assert response.status_code == status, f"{method} {path}: {response.text}"
            if (method, path) == ("POST", "/v1/data-requests"):
                data_request["id"] = response.json()["id"]
            if (method, path) == ("POST", "/v1/consent-requests"):
                sibling_request["request_id"] = response.json()["id"]
    documented = {
        (result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()
    }
    assert documented == {(method, path) for method, path, _, _ in steps}, (
        "every documented operation belongs in this life"
    )
