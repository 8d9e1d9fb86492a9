"""How console pages are rendered and how their errors are answered: HTML in the staff
member's language, a strict Content-Security-Policy, never cached, never framed."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, urlsplit

import asyncpg
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.response import Redirect, Template

from service.db.errors import DATABASE_UNAVAILABLE_ERRORS
from service.i18n import N_, negotiate_locale
from service.settings import Settings

logger = logging.getLogger("service.http.console")

SESSION_COOKIE = "console_session"
SECURE_SESSION_COOKIE = "__Host-console_session"
SIGN_IN_COOKIE = "console_sign_in"
SECURE_SIGN_IN_COOKIE = "__Secure-console_sign_in"
SIGN_IN_PATH = "/console/auth/login"


def session_cookie_name(settings: Settings) -> str:
    """``__Host-`` on https: the browser then keeps it to this host, path ``/`` and Secure."""
    return SECURE_SESSION_COOKIE if settings.secure_cookies else SESSION_COOKIE


def sign_in_cookie_name(settings: Settings) -> str:
    return SECURE_SIGN_IN_COOKIE if settings.secure_cookies else SIGN_IN_COOKIE


def content_security_policy(settings: Settings) -> str:
    """Only this origin; forms may also lead to the identity provider (logout redirects
    there, and browsers hold a form's redirects to ``form-action``)."""
    form_action = "'self'"
    if settings.staff_oidc_issuer:
        issuer = urlsplit(settings.staff_oidc_issuer)
        form_action += f" {issuer.scheme}://{issuer.netloc}"
    return (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )


def page_headers(settings: Settings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }


def locale_of(request: Request[Any, Any, Any]) -> str:
    return negotiate_locale(request.headers.get("accept-language"))


def console_page(
    request: Request[Any, Any, Any],
    name: str,
    *,
    http_status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    settings: Settings = request.app.state.runtime.settings
    return Template(
        template_name=f"console/{name}.html",
        context={
            "locale": locale_of(request),
            "staff": getattr(request.state, "console_session", None),
            "labels": LABELS,
            **context,
        },
        status_code=http_status,
        headers={**page_headers(settings), **(headers or {})},
        media_type="text/html",
    )


class SignInRequired(HTTPException):
    """No live session: the browser is sent to sign in (and back here afterwards)."""

    status_code = 401


class MissingRole(HTTPException):
    status_code = 403


def error_page(
    request: Request[Any, Any, Any], status: int, *, reason: str = "", **context: Any
) -> Template:
    return console_page(
        request, "error", http_status=status, status=status, reason=reason, **context
    )


def _sign_in_required(request: Request[Any, Any, Any], exc: SignInRequired) -> Response[Any]:
    settings: Settings = request.app.state.runtime.settings
    back = request.url.path if request.method == "GET" else "/console"
    redirect: Response[Any] = Redirect(
        f"{SIGN_IN_PATH}?next={quote(back, safe='/')}",
        status_code=303,
        headers=page_headers(settings),
    )
    if session_cookie_name(settings) in request.cookies:
        redirect.delete_cookie(session_cookie_name(settings), path="/")
    return redirect


def _missing_role(request: Request[Any, Any, Any], exc: MissingRole) -> Response[Any]:
    return error_page(request, 403, reason="role")


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    # Litestar's CSRF check refuses a form without its token with 403.
    reason = "form" if exc.status_code == 403 else ""
    return error_page(request, exc.status_code, reason=reason, headers=exc.headers)


def _database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.warning("database unavailable: %s", type(exc).__name__)
    return error_page(request, 503, headers={"Retry-After": "5"})


def _invalid_data(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return error_page(request, 400)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.exception("unhandled error", exc_info=exc)
    return error_page(request, 500)


def console_exception_handlers() -> dict[type[Exception] | int, Any]:
    handlers: dict[type[Exception] | int, Any] = {
        SignInRequired: _sign_in_required,
        MissingRole: _missing_role,
        HTTPException: _http_exception,
    }
    for error in DATABASE_UNAVAILABLE_ERRORS:
        handlers[error] = _database_unavailable
    handlers[asyncpg.exceptions.DataError] = _invalid_data
    handlers[Exception] = _unexpected
    return handlers


# What a stored state or message kind reads as on a console page.
LABELS = {
    "granted": N_("granted"),
    "pending": N_("pending"),
    "denied": N_("refused"),
    "expired": N_("expired"),
    "cancelled": N_("cancelled"),
    "revoked": N_("revoked"),
    "withdrawn": N_("withdrawn"),
    "superseded": N_("superseded"),
    "none": N_("none"),
    "restricted": N_("restricted"),
    "not_required": N_("not required"),
    "sent": N_("sent"),
    "dead": N_("failed for good"),
    "email": N_("email"),
    "webhook": N_("webhook"),
    "support": N_("support"),
    "admin": N_("admin"),
}
