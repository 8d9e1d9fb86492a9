"""RFC 9457 problem details for every error the service returns, and the one table that maps
domain errors (``service.consent.errors``) to HTTP statuses, ``Retry-After`` and guardian pages.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec

from service.consent.errors import (
    Conflict,
    ConsentError,
    Gone,
    InvalidInput,
    LimitExceeded,
    LinkProblem,
    NotFound,
)
from service.db.errors import DATABASE_UNAVAILABLE_ERRORS
from service.http import guardian_pages
from service.http.console import rendering as console_rendering
from service.i18n import negotiate_locale, translator
from service.states import ConsentStatus, DataRequestStatus, LinkProblemReason, RequestStatus

PROBLEM_JSON = "application/problem+json"

logger = logging.getLogger("service.errors")

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None
    # the record's status when it blocks the operation (409): a consent's or a data request's
    # (msgspec encodes no union of two string enums, so the field is typed as plain text)
    current_status: str | None = None


class ProblemError(HTTPException):
    """Raise in the HTTP layer to answer with a problem (domain rules raise their own errors)."""

    def __init__(
        self, status_code: int, detail: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail=detail, status_code=status_code, headers=headers)


def problem_response(
    status: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    current_status: ConsentStatus | DataRequestStatus | RequestStatus | None = None,
) -> Response[Problem]:
    body = Problem(
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        errors=errors,
        current_status=current_status,
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


# Every guarded API operation may answer these: a missing or unknown credential, a credential
# without the scope or role, the database unavailable. (The OpenAPI document adds the rest from
# each operation's shape: service.http.contract.)
API_PROBLEMS = (401, 403, 503)

# What each status means in this API, as the OpenAPI document says it (the 400/422 rule below).
PROBLEM_DESCRIPTIONS = {
    400: (
        "Bad Request: no JSON object could be read from the request (the body is missing, "
        "empty, not valid JSON, nested too deeply, or a JSON value other than an object), or "
        "the request has a form this operation refuses."
    ),
    401: "Unauthorized: no bearer credential, or one that is unknown, revoked or expired.",
    403: "Forbidden: the credential lacks the scope or staff role this operation needs.",
    404: "Not Found: no such resource.",
    409: "Conflict: the resource's current state does not allow this; see current_status.",
    410: "Gone: what was asked for is used up or past its time (e.g. a handoff code).",
    413: "Content Too Large: the body is larger than 64 KiB.",
    415: "Unsupported Media Type: send the body as application/json.",
    422: (
        "Unprocessable Content: a body field or a query, path or header parameter is missing, "
        "unknown, of the wrong type or has a value this operation does not accept; errors "
        "lists each one where they are known."
    ),
    429: "Too Many Requests: a limit was reached; retry after Retry-After seconds.",
    503: (
        "Service Unavailable: the consent database cannot be reached (never an answer "
        "guessed without it); retry after Retry-After seconds."
    ),
}

_EXAMPLE_DETAILS = {
    400: "The request body is not valid JSON (JSON is malformed: invalid character (byte 6)).",
    401: "Missing bearer credential: send 'Authorization: Bearer <key>'.",
    403: "This API key lacks the scope consent:request.",
    404: "No such resource.",
    409: "This consent is not granted, so it cannot be revoked.",
    410: "The handoff code was used already.",
    413: "The request body is larger than the 64 KiB this service accepts.",
    415: "Send the request body as application/json.",
    422: "Object missing required field `purposes` for the request body",
    429: "Too many consent requests to this guardian address; try again later.",
    503: "The consent database cannot be reached; try again shortly.",
}


def problem_example(status: int) -> dict[str, Any]:
    """An example body of a problem with this status, for the OpenAPI document."""
    example: dict[str, Any] = {
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": _EXAMPLE_DETAILS.get(status, _TITLES.get(status, "Error")),
    }
    if status == 409:
        example["current_status"] = "revoked"
    if status == 422:
        example["errors"] = [{"message": "Object missing required field `purposes`", "key": "data"}]
    return example


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """The OpenAPI entries of the problems an operation answers (usually ``API_PROBLEMS`` and
    its own), each as problem+json: they replace Litestar's stock ``application/json`` 400."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_JSON,
            description=PROBLEM_DESCRIPTIONS.get(status, _TITLES[status]),
            generate_examples=False,
        )
        for status in sorted(set(statuses))
    }


# ---- domain errors: the one table of their HTTP statuses -------------------------------------

_STATUS_OF_ERROR: dict[type[ConsentError], int] = {
    ConsentError: 400,
    NotFound: 404,
    InvalidInput: 422,
    Conflict: 409,
    Gone: 410,
    LimitExceeded: 429,
}

_STATUS_OF_LINK_PROBLEM: dict[LinkProblemReason, int] = {
    LinkProblemReason.UNKNOWN: 404,
    LinkProblemReason.EXPIRED: 410,
    LinkProblemReason.USED: 410,
    LinkProblemReason.NOT_LIVE: 410,
    LinkProblemReason.SUPERSEDED: 410,
    LinkProblemReason.CANCELLED: 410,
    LinkProblemReason.NOT_REQUIRED: 410,
    LinkProblemReason.ADDRESS_LINK_EXPIRED: 410,
    LinkProblemReason.ADDRESS_LINK_USED: 410,
    LinkProblemReason.LOCKED: 429,
    LinkProblemReason.WITHDRAWAL_LOCKED: 429,
}

DATABASE_UNAVAILABLE_HEADERS = {"Retry-After": "5"}


def status_for(error: ConsentError | LinkProblem) -> int:
    if isinstance(error, LinkProblem):
        return _STATUS_OF_LINK_PROBLEM[error.reason]
    return next(_STATUS_OF_ERROR[kind] for kind in type(error).__mro__ if kind in _STATUS_OF_ERROR)


def retry_after(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up: never sooner than the wait, never 0."""
    return str(max(1, math.ceil(seconds)))


def retry_after_headers(error: ConsentError | LinkProblem) -> dict[str, str] | None:
    seconds = error.retry_after_seconds if isinstance(error, LimitExceeded | LinkProblem) else None
    return {"Retry-After": retry_after(seconds)} if seconds is not None else None


def _validation_errors(extra: Any) -> list[dict[str, Any]] | None:
    if isinstance(extra, list) and extra:
        return [item if isinstance(item, dict) else {"message": str(item)} for item in extra]
    return None


def is_guardian_path(request: Request[Any, Any, Any]) -> bool:
    """Only for errors raised before routing (unknown path, method not allowed, bad host).

    Once a request is routed, the guardian controller's own handlers answer with pages; a
    request that matched no route has no controller yet, so its path is all there is to go by.
    """
    path = request.url.path
    return path == "/guardian" or path.startswith("/guardian/")


def is_console_path(request: Request[Any, Any, Any]) -> bool:
    """Like ``is_guardian_path``, for the support console's pages."""
    path = request.url.path
    return path == "/console" or path.startswith("/console/")


# ---- 400 or 422: the one rule ----------------------------------------------------------------
#
# 400 Bad Request: no JSON object could be read from the request: the body is missing or empty,
#     is not valid JSON (malformed, truncated, nested too deeply), or is a JSON value other than
#     an object (an array, a string, a number, null); or the request has a form the operation
#     refuses whatever it holds (a guardian address in a URL).
# 422 Unprocessable Content: the request was read, but a body field or a query, path or header
#     parameter is missing, unknown, of the wrong type or has a value the operation does not
#     accept (a pattern, a length, an enum, an unknown purpose or country, an impossible date).


def _unreadable_body(errors: list[dict[str, Any]] | None) -> bool:
    """Litestar reports a body it cannot take as an object under the key ``data``: empty,
    or of another JSON type. Its field errors carry the field's name instead."""
    for error in errors or ():
        message = str(error.get("message", ""))
        whole_body = error.get("source") == "body" and error.get("key") == "data"
        if whole_body and (message == "'data'" or message.startswith("Expected `object`")):
            return True
    return False


def validation_status(errors: list[dict[str, Any]] | None) -> int:
    """The status of a failed validation by the rule above."""
    return 400 if _unreadable_body(errors) else 422


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if is_guardian_path(request):
        return guardian_pages.error_page(request, status, headers=exc.headers)
    if is_console_path(request) and getattr(request.app.state, "staff_oidc", None) is not None:
        return console_rendering.error_page(request, status, headers=exc.headers)
    detail = exc.detail or _TITLES.get(status, "Error")
    errors = None
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc.extra)
        if errors:
            detail = "; ".join(_describe(error) for error in errors)
        status = validation_status(errors)
    detail = _clearer_detail(status, detail, exc.headers or {})
    return problem_response(status, detail, headers=exc.headers, errors=errors)


def _clearer_detail(status: int, detail: str, headers: dict[str, str]) -> str:
    """Litestar's stock details for these cases say little (or echo the query string)."""
    if status == 404 and detail == "Not Found":
        return "No such resource."
    if status == 405:
        allowed = headers.get("allow") or headers.get("Allow")
        return f"This method is not allowed here; allowed: {allowed}." if allowed else detail
    if status == 413:
        return "The request body is larger than the 64 KiB this service accepts."
    if status == 400 and detail.startswith(("Input data was truncated", "JSON is malformed")):
        return f"The request body is not valid JSON ({detail})."
    if detail.startswith("Missing required") and " for path " in detail:
        return detail.split(" for path ")[0] + "."
    return detail


def _describe(error: dict[str, Any]) -> str:
    message = str(error.get("message", "invalid value"))
    key = error.get("key")
    if error.get("source") == "body" and message == repr(key):
        return "The request body is missing or empty: send a JSON object."
    if key == "data" and error.get("source") == "body":
        return f"{message} for the request body"
    if key and key not in message:
        return f"{message} (at {key})"
    return message


def handle_database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.warning("database unavailable: %s", type(exc).__name__)
    return problem_response(
        503,
        "The consent database cannot be reached; try again shortly.",
        headers=DATABASE_UNAVAILABLE_HEADERS,
    )


def handle_invalid_data(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Values the database cannot store (e.g. a NUL byte in text) that validation let through:
    # a field's value, so 422 like any other invalid value.
    return problem_response(
        422, f"The request holds a value that cannot be stored ({type(exc).__name__})."
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.exception("unhandled error", exc_info=exc)
    return problem_response(500, "An unexpected error occurred; it has been logged.")


def handle_domain_error(request: Request[Any, Any, Any], exc: ConsentError) -> Response[Any]:
    current_status = exc.current_status if isinstance(exc, Conflict) else None
    return problem_response(
        status_for(exc), exc.detail, headers=retry_after_headers(exc), current_status=current_status
    )


def exception_handlers() -> dict[type[Exception] | int, Any]:
    """The application's handlers: problem+json for every error, before or after routing."""
    handlers: dict[type[Exception] | int, Any] = {
        HTTPException: handle_http_exception,
        ConsentError: handle_domain_error,
    }
    for error in DATABASE_UNAVAILABLE_ERRORS:
        handlers[error] = handle_database_unavailable
    handlers[asyncpg.exceptions.DataError] = handle_invalid_data
    handlers[Exception] = handle_unexpected
    return handlers


# ---- guardian pages: the same errors as HTML for a person in a browser ------------------------


def _guardian_link_problem(request: Request[Any, Any, Any], exc: LinkProblem) -> Response[Any]:
    return guardian_pages.link_problem_page(
        exc.reason,
        locale=exc.locale or negotiate_locale(request.headers.get("accept-language")),
        http_status=status_for(exc),
        headers=retry_after_headers(exc),
    )


def _guardian_limit(request: Request[Any, Any, Any], exc: LimitExceeded) -> Response[Any]:
    # The only limit on guardian pages is the one on form submissions per client address; the
    # request is not loaded yet, so the browser's language is all there is to go by.
    locale = negotiate_locale(request.headers.get("accept-language"))
    return guardian_pages.error_page(
        request,
        status_for(exc),
        headers=retry_after_headers(exc),
        message=translator(locale).gettext(guardian_pages.TOO_MANY_SUBMISSIONS),
        locale=locale,
    )


def _guardian_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return guardian_pages.error_page(request, exc.status_code, headers=exc.headers)


def _guardian_database_unavailable(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[Any]:
    logger.warning("database unavailable: %s", type(exc).__name__)
    return guardian_pages.error_page(request, 503, headers=DATABASE_UNAVAILABLE_HEADERS)


def _guardian_invalid_data(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return guardian_pages.error_page(request, 400)


def _guardian_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.exception("unhandled error", exc_info=exc)
    return guardian_pages.error_page(request, 500)


def guardian_exception_handlers() -> dict[type[Exception] | int, Any]:
    """The guardian controller's handlers: every error after routing answered with a page."""
    handlers: dict[type[Exception] | int, Any] = {
        HTTPException: _guardian_http_exception,
        LinkProblem: _guardian_link_problem,
        LimitExceeded: _guardian_limit,
    }
    for error in DATABASE_UNAVAILABLE_ERRORS:
        handlers[error] = _guardian_database_unavailable
    handlers[asyncpg.exceptions.DataError] = _guardian_invalid_data
    handlers[Exception] = _guardian_unexpected
    return handlers
