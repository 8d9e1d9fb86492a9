"""The API contract in the OpenAPI document, derived from what the code does rather than listed
by hand, so no operation can leave out a credential or an error it really answers:

- security: from each operation's guards and the scopes and roles in its ``opt``
  (``apiKey``: a main-app API key; ``staffToken``: a staff JWT); public operations declare none;
- problems (application/problem+json): 401 and 403 where a guard runs, 503 (with
  ``Retry-After``) where the database is read, 400, 413, 415 and 422 for a JSON body, 422 for
  parameters, 404 for path parameters, plus whatever the handler declares with
  ``problem_responses`` (409, 429 with ``Retry-After``, ...);
- examples: the handler's ``opt["examples"]`` (``"request"``, and a status for a response).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Reference,
    RequestBody,
    Schema,
    SecurityRequirement,
    SecurityScheme,
)
from litestar.openapi.spec.enums import OpenAPIType
from litestar.routes import HTTPRoute

from service.http.api_key_auth import api_key_guard
from service.http.problems import PROBLEM_DESCRIPTIONS, PROBLEM_JSON, problem_example
from service.http.staff_auth import api_key_or_staff_guard, staff_guard

API_KEY = "apiKey"
STAFF_TOKEN = "staffToken"  # noqa: S105 - the name of a security scheme

SECURITY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    API_KEY: SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="csk_…",
        description=(
            "The main app's API key, `Authorization: Bearer csk_…`, made with "
            "`consent-service keys create --name NAME --scope SCOPE...`. An operation's "
            "requirement lists the scopes the key must hold (`consent:request`, `consent:check`, "
            "`subject:erase`)."
        ),
    ),
    STAFF_TOKEN: SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="JWT",
        description=(
            "A staff JWT from the operator's identity provider (CONSENT_STAFF_ISSUER, "
            "CONSENT_STAFF_AUDIENCE, CONSENT_STAFF_JWKS), `Authorization: Bearer <jwt>`; its "
            "`roles` claim must hold one of the roles an operation's requirements list "
            "(`support`, `admin`). `consent-service staff-token` mints one in development."
        ),
    ),
}

COMPONENTS = Components(security_schemes=SECURITY_SCHEMES)

_PROBLEM_SCHEMA = Reference(ref="#/components/schemas/Problem")
_RETRY_AFTER = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.INTEGER, minimum=1),
    description="Seconds to wait before trying again.",
    required=True,
)
_WWW_AUTHENTICATE = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.STRING),
    description="The bearer challenge (RFC 6750).",
)
_HEADERS: dict[int, dict[str, OpenAPIHeader | Reference]] = {
    401: {"WWW-Authenticate": _WWW_AUTHENTICATE},
    429: {"Retry-After": _RETRY_AFTER},
    503: {"Retry-After": _RETRY_AFTER},
}


def security_of(handler: HTTPRouteHandler) -> list[SecurityRequirement]:
    """The credentials a handler's guards admit: any one requirement of the list suffices."""
    guards = handler.resolve_guards()
    scopes = list(handler.opt.get("scopes", ()))
    roles = list(handler.opt.get("roles", ()))
    staff = [{STAFF_TOKEN: [role]} for role in roles] or [{STAFF_TOKEN: []}]
    if api_key_or_staff_guard in guards:
        return [{API_KEY: scopes}, *staff]
    if staff_guard in guards:
        return staff
    if api_key_guard in guards:
        return [{API_KEY: scopes}]
    return []


def _problem(status: int, existing: OpenAPIResponse | Reference | None) -> OpenAPIResponse:
    content = existing.content if isinstance(existing, OpenAPIResponse) else None
    schema = (content or {}).get(PROBLEM_JSON)
    return OpenAPIResponse(
        description=PROBLEM_DESCRIPTIONS[status],
        headers=_HEADERS.get(status),
        content={
            PROBLEM_JSON: OpenAPIMediaType(
                schema=schema.schema if schema is not None else _PROBLEM_SCHEMA,
                examples={"problem": Example(value=problem_example(status))},
            )
        },
    )


def _is_problem(response: OpenAPIResponse | Reference) -> bool:
    return isinstance(response, OpenAPIResponse) and PROBLEM_JSON in (response.content or {})


def derived_statuses(operation: Operation) -> set[int]:
    """The problems an operation answers by its shape alone."""
    statuses: set[int] = set()
    if operation.security:
        # a guard: no or an unknown credential, or one without the scope or role; the API key
        # is looked up and every guarded operation reads its records from the database
        statuses |= {401, 403, 503}
    body = operation.request_body
    if isinstance(body, RequestBody) and any(kind.endswith("json") for kind in body.content):
        statuses |= {400, 413, 415, 422}
    parameters = [p for p in operation.parameters or () if not isinstance(p, Reference)]
    if parameters:
        statuses.add(422)
    if any(parameter.param_in == "path" for parameter in parameters):
        statuses.add(404)
    return statuses


def complete(operation: Operation, examples: Mapping[Any, Any]) -> None:
    responses = dict(operation.responses or {})
    declared = {int(code) for code, response in responses.items() if _is_problem(response)}
    for code in [code for code in responses if code.startswith(("4", "5"))]:
        if int(code) not in declared:
            del responses[code]  # Litestar's stock application/json 400: not what is answered
    for status in sorted(declared | derived_statuses(operation)):
        responses[str(status)] = _problem(status, responses.get(str(status)))
    _add_examples(operation, responses, examples)
    operation.responses = dict(sorted(responses.items()))


def _add_examples(
    operation: Operation, responses: dict[str, Any], examples: Mapping[Any, Any]
) -> None:
    body = operation.request_body
    if "request" in examples and body is not None and not isinstance(body, Reference):
        for media in body.content.values():
            media.examples = {"example": Example(value=examples["request"])}
    for key, value in examples.items():
        response = responses.get(str(key))
        if key == "request" or not isinstance(response, OpenAPIResponse):
            continue
        for media in (response.content or {}).values():
            media.examples = {"example": Example(value=value)}


def _operation_class(handler: HTTPRouteHandler) -> type[Operation]:
    examples: Mapping[Any, Any] = handler.opt.get("examples", {})

    @dataclass
    class ContractOperation(Operation):
        def __post_init__(self) -> None:
            complete(self, examples)

    return ContractOperation


def apply_contract(app: Litestar) -> None:
    """Give every API operation its security and its complete problem responses (before the
    OpenAPI document is first built: Litestar builds it on first use)."""
    for handler in _handlers(app.routes):
        if not handler.include_in_schema:
            continue
        handler.security = security_of(handler) or None
        handler.operation_class = _operation_class(handler)


def _handlers(routes: Iterable[Any]) -> Iterable[HTTPRouteHandler]:
    for route in routes:
        if isinstance(route, HTTPRoute):
            yield from route.route_handlers
