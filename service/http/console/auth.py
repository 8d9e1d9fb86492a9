"""Console sign-in and sign-out: the OpenID Connect round trip through the identity provider,
and the session cookie (random id, HttpOnly, SameSite=Lax, Secure on https)."""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie, State
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from service.consent import staff_sessions
from service.consent.runtime import Runtime
from service.http.console.rendering import (
    console_exception_handlers,
    console_page,
    error_page,
    page_headers,
    session_cookie_name,
    sign_in_cookie_name,
)
from service.http.dependencies import Db
from service.security.staff_oidc import (
    SIGN_IN_SECONDS,
    ProviderUnavailable,
    SignInError,
    StaffOidc,
)

logger = logging.getLogger("service.http.console")


def _oidc(state: State) -> StaffOidc:
    oidc: StaffOidc = state.staff_oidc
    return oidc


class ConsoleAuthController(Controller):
    """Open to everybody: these routes are how a staff member gets a session."""

    path = "/console/auth"
    include_in_schema = False
    exception_handlers = console_exception_handlers()
    opt = {"sign_in": True}

    @get("/login")
    async def login(
        self, request: Request[Any, Any, Any], state: State, next: FromQuery[str | None] = None
    ) -> Redirect | Template:
        runtime: Runtime = state.runtime
        try:
            url, sealed = await _oidc(state).begin(runtime.clock.now(), next)
        except ProviderUnavailable as exc:
            logger.warning("identity provider unavailable: %s", exc)
            return error_page(request, 503, reason="provider", headers={"Retry-After": "30"})
        settings = runtime.settings
        return Redirect(
            url,
            status_code=303,
            headers=page_headers(settings),
            cookies=[
                Cookie(
                    key=sign_in_cookie_name(settings),
                    value=base64.urlsafe_b64encode(sealed).decode(),
                    path="/console/auth",
                    max_age=SIGN_IN_SECONDS,
                    secure=settings.secure_cookies,
                    httponly=True,
                    samesite="lax",
                )
            ],
        )

    @get("/callback")
    async def callback(
        self, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Redirect | Template:
        runtime: Runtime = state.runtime
        settings = runtime.settings
        oidc = _oidc(state)
        raw = request.cookies.get(sign_in_cookie_name(settings), "")
        try:
            sealed = base64.urlsafe_b64decode(raw.encode()) if raw else None
        except (binascii.Error, ValueError):
            sealed = None
        query = {key: str(value) for key, value in request.query_params.items()}
        try:
            pending = oidc.pending(sealed, runtime.clock.now())
            identity = await oidc.finish(pending, query)
        except SignInError as exc:
            logger.warning("console sign-in refused: %s", exc)
            answer = error_page(request, 400, reason="sign_in")
        except ProviderUnavailable as exc:
            logger.warning("identity provider unavailable: %s", exc)
            answer = error_page(request, 503, reason="provider", headers={"Retry-After": "30"})
        else:
            if not identity.roles:
                answer = error_page(request, 403, reason="no_role")
            else:
                session_id, _ = await staff_sessions.open_session(db, runtime, identity)
                redirect = Redirect(
                    pending.next_path, status_code=303, headers=page_headers(settings)
                )
                redirect.set_cookie(
                    key=session_cookie_name(settings),
                    value=session_id,
                    path="/",
                    max_age=settings.console_session_lifetime,
                    secure=settings.secure_cookies,
                    httponly=True,
                    samesite="lax",
                )
                redirect.delete_cookie(sign_in_cookie_name(settings), path="/console/auth")
                return redirect
        # A sign-in is used once, whatever its outcome.
        answer.delete_cookie(sign_in_cookie_name(settings), path="/console/auth")
        return answer

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any], state: State, db: Db) -> Redirect:
        runtime: Runtime = state.runtime
        settings = runtime.settings
        session = await staff_sessions.live_session(
            db, runtime, request.cookies.get(session_cookie_name(settings))
        )
        if session is not None:
            await staff_sessions.end_session(db, runtime, session)
        target = await _oidc(state).logout_url() or "/console/auth/signed-out"
        redirect = Redirect(target, status_code=303, headers=page_headers(settings))
        redirect.delete_cookie(session_cookie_name(settings), path="/")
        return redirect

    @get("/signed-out")
    async def signed_out(self, request: Request[Any, Any, Any]) -> Template:
        return console_page(request, "signed_out")
