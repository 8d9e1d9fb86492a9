"""The console guard: a live session (cookie) holding one of the route's ``opt["roles"]``."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.consent import staff_sessions
from service.consent.runtime import Runtime
from service.consent.staff_sessions import StaffSession
from service.db.pool import borrow
from service.http.console.rendering import MissingRole, SignInRequired, session_cookie_name


async def console_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    state = connection.app.state
    runtime: Runtime = state.runtime
    cookie = connection.cookies.get(session_cookie_name(runtime.settings))
    async with borrow(state.pool) as db:
        session = await staff_sessions.live_session(db, runtime, cookie)
    if session is None:
        raise SignInRequired()
    connection.state.console_session = session
    wanted: tuple[str, ...] = handler.opt.get("roles", ())
    # A route that names no role is open to nobody: a new page must say who may see it.
    if not session.roles.intersection(wanted):
        raise MissingRole()


def current_session(connection: ASGIConnection[Any, Any, Any, Any]) -> StaffSession:
    session: StaffSession = connection.state.console_session
    return session
