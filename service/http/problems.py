"""RFC 9457 problem details for every error the service returns."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from service.db.errors import DATABASE_UNAVAILABLE_ERRORS

PROBLEM_JSON = "application/problem+json"

logger = logging.getLogger("service.errors")

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
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
    current_status: str | None = None


class ProblemError(HTTPException):
    """Raise to answer with a problem; ``extra`` members are added to the body."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        current_status: str | None = None,
    ) -> None:
        super().__init__(detail=detail, status_code=status_code, headers=headers)
        self.current_status = current_status


def problem_response(
    status: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    current_status: str | None = None,
) -> Response[Problem]:
    body = Problem(
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        errors=errors,
        current_status=current_status,
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_errors(extra: Any) -> list[dict[str, Any]] | None:
    if isinstance(extra, list) and extra:
        return [item if isinstance(item, dict) else {"message": str(item)} for item in extra]
    return None


def _for_guardian(request: Request[Any, Any, Any]) -> bool:
    """Guardians are people in a browser: they get pages, not JSON."""
    path = request.url.path
    return path == "/guardian" or path.startswith("/guardian/")


def _guardian_error_page(
    request: Request[Any, Any, Any], status: int, headers: dict[str, str] | None
) -> Response[Any]:
    from service.http.guardian import error_page

    return error_page(request, status, headers=headers)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if _for_guardian(request):
        return _guardian_error_page(request, status, exc.headers)
    detail = exc.detail or _TITLES.get(status, "Error")
    errors = None
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc.extra)
        if errors:
            detail = "; ".join(_describe(error) for error in errors)
    detail = _clearer_detail(status, detail, exc.headers or {})
    current_status = exc.current_status if isinstance(exc, ProblemError) else None
    return problem_response(
        status,
        detail,
        headers=exc.headers,
        errors=errors,
        current_status=current_status,
    )


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
    if status == 400 and detail.startswith("Missing required") and " for path " in detail:
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
    if _for_guardian(request):
        return _guardian_error_page(request, 503, {"Retry-After": "5"})
    return problem_response(
        503,
        "The consent database cannot be reached; try again shortly.",
        headers={"Retry-After": "5"},
    )


def handle_invalid_data(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Values the database cannot store (e.g. a NUL byte in text) that validation let through.
    if _for_guardian(request):
        return _guardian_error_page(request, 400, None)
    return problem_response(
        400, f"The request holds a value that cannot be stored ({type(exc).__name__})."
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.exception("unhandled error", exc_info=exc)
    if _for_guardian(request):
        return _guardian_error_page(request, 500, None)
    return problem_response(500, "An unexpected error occurred; it has been logged.")


def exception_handlers() -> dict[type[Exception] | int, Any]:
    handlers: dict[type[Exception] | int, Any] = {HTTPException: handle_http_exception}
    for error in DATABASE_UNAVAILABLE_ERRORS:
        handlers[error] = handle_database_unavailable
    handlers[asyncpg.exceptions.DataError] = handle_invalid_data
    handlers[Exception] = handle_unexpected
    return handlers
