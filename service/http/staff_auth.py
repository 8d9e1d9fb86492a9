"""Staff guards: a staff JWT with the handler's role, or (for shared reads) an API key."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.db.api_keys import KEY_PREFIX
from service.http.api_key_auth import api_key_guard, bearer_credential
from service.http.problems import ProblemError
from service.security.staff_tokens import StaffAuthError, StaffPrincipal, StaffVerifier


async def authenticate_staff(connection: ASGIConnection[Any, Any, Any, Any]) -> StaffPrincipal:
    credential = bearer_credential(connection)
    verifier: StaffVerifier | None = connection.app.state.staff_verifier
    if verifier is None:
        raise ProblemError(401, "Staff authentication is not configured on this service.")
    try:
        return await verifier.verify(credential)
    except StaffAuthError as exc:
        raise ProblemError(
            401,
            f"Staff token rejected: {exc}.",
            headers={"WWW-Authenticate": 'Bearer realm="consent-staff", error="invalid_token"'},
        ) from None


def require_role(principal: StaffPrincipal, handler: BaseRouteHandler) -> None:
    wanted: tuple[str, ...] = handler.opt.get("roles", ())
    if wanted and not principal.roles.intersection(wanted):
        raise ProblemError(403, f"This action needs the staff role {' or '.join(wanted)}.")


async def staff_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Admit a staff token holding one of the handler's ``opt['roles']``."""
    principal = await authenticate_staff(connection)
    require_role(principal, handler)
    connection.state.staff = principal


async def api_key_or_staff_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """For reads both audiences make: an API key with ``opt['scopes']`` or a staff role."""
    if bearer_credential(connection).startswith(KEY_PREFIX):
        await api_key_guard(connection, handler)
    else:
        await staff_guard(connection, handler)
