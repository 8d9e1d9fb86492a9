"""The guardian dashboard (``service.consent.dashboard``): ask for a sign-in link, sign in with
it, see every child of the address, withdraw a purpose, open a consent's rights and address
pages, sign out. Every error is answered with a page."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie, State
from litestar.params import FromPath
from litestar.response import Redirect, Template

from service.consent import dashboard, policy
from service.consent.dashboard import SESSION_COOKIE, Child, PurposeState
from service.consent.errors import (
    FormError,
    InvalidWithdrawal,
    LimitExceeded,
    LinkProblem,
    NotFound,
)
from service.consent.runtime import Runtime
from service.db.guardian_dashboard import GuardianSession
from service.http.client_address import limit_keys
from service.http.dependencies import Db
from service.http.guardian import _titles, client_address, limit_submissions
from service.http.guardian_pages import SECURITY_HEADERS, error_page, form_errors, page
from service.http.problems import guardian_exception_handlers, retry_after_headers, status_for
from service.i18n import N_, format_datetime, negotiate_locale, translator
from service.security.email_address import InvalidEmailAddress, parse_email_address
from service.security.tokens import looks_like_link_token
from service.states import LinkProblemReason

TOO_MANY_SIGN_IN_LINKS = N_(
    "Too many sign-in links have been asked for from this network in a short time, so no "
    "new one was sent. Please try again later."
)


def _browser_locale(request: Request[Any, Any, Any]) -> str:
    return negotiate_locale(request.headers.get("accept-language"))


def _session_cookie(runtime: Runtime, value: str, *, max_age: int) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        path="/guardian",
        max_age=max_age,
        httponly=True,
        secure=runtime.settings.secure_cookies,
        samesite="lax",
    )


def _child_view(runtime: Runtime, child: Child, locale: str) -> dict[str, Any]:
    titles = {
        p.id: p.localized_title(locale) for p in runtime.catalogue.among(child.request.purposes)
    }
    return {
        "consent_id": str(child.consent.id),
        "child_hint": child.child_hint,
        "live": child.live,
        "status": child.status,
        "granted_at": format_datetime(
            child.consent.granted_at, locale, policy.display_timezone(child.consent.jurisdiction)
        ),
        "valid_until": format_datetime(
            child.consent.expires_at, locale, policy.display_timezone(child.consent.jurisdiction)
        ),
        "purposes": [
            {
                "id": line.id,
                "title": titles[line.id],
                "state": line.state,
                "required": line.required,
            }
            for line in child.purposes
        ],
    }


class GuardianDashboardController(Controller):
    path = "/guardian"
    include_in_schema = False
    exception_handlers = guardian_exception_handlers()

    def _sign_in_form(
        self,
        runtime: Runtime,
        locale: str,
        *,
        errors: list[FormError] | None = None,
        email: str = "",
        session_ended: bool = False,
        status: int = 200,
    ) -> Template:
        return page(
            "dashboard_sign_in",
            locale=locale,
            http_status=status,
            operator_name=runtime.settings.operator_name,
            form_action="/guardian",
            **form_errors(errors or [], locale),
            email=email,
            session_ended=session_ended,
        )

    async def _session(
        self, request: Request[Any, Any, Any], runtime: Runtime, db: Db
    ) -> GuardianSession | None:
        return await dashboard.current_session(db, runtime, request.cookies.get(SESSION_COOKIE))

    def _signed_out(self, request: Request[Any, Any, Any], runtime: Runtime) -> Template:
        """No live session: the sign-in form again, and nothing about any child."""
        response = self._sign_in_form(
            runtime, _browser_locale(request), session_ended=True, status=401
        )
        response.cookies.append(_session_cookie(runtime, "", max_age=0))
        return response

    @get("/")
    async def sign_in_page(
        self, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template | Redirect:
        runtime: Runtime = state.runtime
        if await self._session(request, runtime, db) is not None:
            return Redirect("/guardian/dashboard", status_code=303, headers=SECURITY_HEADERS)
        return self._sign_in_form(runtime, _browser_locale(request))

    @post("/", status_code=200)
    async def ask_for_link(self, request: Request[Any, Any, Any], state: State, db: Db) -> Template:
        """Whatever the address, the same answer: a link goes out only to one that consented."""
        runtime: Runtime = state.runtime
        await limit_submissions(request, runtime, db)
        locale = _browser_locale(request)
        form = await request.form()
        raw = str(form.get("email", ""))
        try:
            address = parse_email_address(raw.strip())
        except InvalidEmailAddress:
            return self._sign_in_form(
                runtime, locale, errors=[FormError.EMAIL_INVALID], email=raw[:254], status=422
            )
        keys = [key for _, key in limit_keys(client_address(request, runtime.settings))]
        try:
            await dashboard.request_sign_in(db, runtime, address, locale=locale, client_keys=keys)
        except LimitExceeded as limit:
            return error_page(
                request,
                429,
                headers=retry_after_headers(limit),
                message=translator(locale).gettext(TOO_MANY_SIGN_IN_LINKS),
                locale=locale,
            )
        return page(
            "dashboard_sent",
            locale=locale,
            operator_name=runtime.settings.operator_name,
            minutes=int(dashboard.SIGN_IN_LINK_TTL.total_seconds() // 60),
        )

    def _link_problem(self, runtime: Runtime, problem: LinkProblem, locale: str) -> Template:
        return page(
            "dashboard_link",
            locale=problem.locale or locale,
            http_status=status_for(problem),
            operator_name=runtime.settings.operator_name,
            reason=problem.reason,
        )

    @get("/sign-in/{token:str}")
    async def sign_in_link(
        self, token: FromPath[str], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        """Shows the button; a mail scanner's GET uses nothing up."""
        runtime: Runtime = state.runtime
        try:
            if not looks_like_link_token(token):
                raise LinkProblem(LinkProblemReason.UNKNOWN)
            link = await dashboard.load_sign_in_link(db, runtime, token)
        except LinkProblem as problem:
            return self._link_problem(runtime, problem, _browser_locale(request))
        return page(
            "dashboard_continue",
            locale=link.locale,
            operator_name=runtime.settings.operator_name,
            form_action=f"/guardian/sign-in/{token}",
        )

    @post("/sign-in/{token:str}", status_code=303)
    async def sign_in(
        self, token: FromPath[str], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template | Redirect:
        runtime: Runtime = state.runtime
        await limit_submissions(request, runtime, db)
        try:
            if not looks_like_link_token(token):
                raise LinkProblem(LinkProblemReason.UNKNOWN)
            session_id, _ = await dashboard.sign_in(db, runtime, token)
        except LinkProblem as problem:
            return self._link_problem(runtime, problem, _browser_locale(request))
        return Redirect(
            "/guardian/dashboard",
            status_code=303,
            headers=SECURITY_HEADERS,
            cookies=[
                _session_cookie(
                    runtime,
                    session_id,
                    max_age=int(dashboard.SESSION_LIFETIME.total_seconds()),
                )
            ],
        )

    @get("/dashboard")
    async def dashboard_page(
        self, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        runtime: Runtime = state.runtime
        session = await self._session(request, runtime, db)
        if session is None:
            return self._signed_out(request, runtime)
        locale = session.locale
        found = await dashboard.children(db, runtime, session)
        return page(
            "dashboard",
            locale=locale,
            operator_name=runtime.settings.operator_name,
            children=[_child_view(runtime, child, locale) for child in found],
            PurposeState=PurposeState,
        )

    async def _owned(
        self, db: Db, runtime: Runtime, session: GuardianSession, raw: object
    ) -> Child | None:
        try:
            consent_id = uuid.UUID(str(raw))
        except ValueError:
            return None
        try:
            return await dashboard.child(db, runtime, session, consent_id)
        except NotFound:
            return None

    def _not_found(self, runtime: Runtime, locale: str) -> Template:
        return page(
            "dashboard_link",
            locale=locale,
            http_status=404,
            operator_name=runtime.settings.operator_name,
            reason="not_yours",
        )

    @post("/dashboard/withdraw", status_code=200)
    async def withdraw(self, request: Request[Any, Any, Any], state: State, db: Db) -> Template:
        """Without ``confirm`` the confirmation step (nothing changes); with it, the withdrawal."""
        runtime: Runtime = state.runtime
        await limit_submissions(request, runtime, db)
        session = await self._session(request, runtime, db)
        if session is None:
            return self._signed_out(request, runtime)
        locale = session.locale
        form = await request.form()
        child = await self._owned(db, runtime, session, form.get("consent"))
        if child is None:
            return self._not_found(runtime, locale)
        purpose = str(form.get("purpose", ""))
        line = next((p for p in child.purposes if p.id == purpose), None)
        if line is None or line.state != PurposeState.GIVEN:
            return page(
                "dashboard_confirm",
                locale=locale,
                http_status=422,
                operator_name=runtime.settings.operator_name,
                child=_child_view(runtime, child, locale),
                purpose=None,
                **form_errors([FormError.PURPOSES], locale),
            )
        ends = dashboard.ends_consent(runtime, child, purpose)
        # with CONSENT_WITHDRAWAL_ERASES an ending withdrawal erases anyway: nothing to choose
        offer_erase = ends and not runtime.settings.withdrawal_erases
        erase = offer_erase and form.get("erase") == "yes"
        purpose_view = {
            "id": purpose,
            "title": _titles(runtime, [purpose], locale)[0]["title"],
            "required": line.required,
            "ends": ends,
        }

        def confirm_page(errors: list[FormError], status: int = 200) -> Template:
            return page(
                "dashboard_confirm",
                locale=locale,
                http_status=status,
                operator_name=runtime.settings.operator_name,
                child=_child_view(runtime, child, locale),
                purpose=purpose_view,
                offer_erase=offer_erase,
                erase=erase,
                **form_errors(errors, locale),
            )

        if form.get("confirm") != "yes":
            return confirm_page([])
        try:
            withdrawal = await dashboard.withdraw_purpose(
                db, runtime, session, child.consent.id, [purpose], erase=erase
            )
        except InvalidWithdrawal as invalid:
            return confirm_page(list(invalid.errors), status=422)
        return page(
            "dashboard_withdrawn",
            locale=locale,
            operator_name=runtime.settings.operator_name,
            child_hint=child.child_hint,
            purposes=_titles(runtime, withdrawal.withdrawn, locale),
            ended=withdrawal.ended,
            erased=erase,
            erased_on_withdrawal=withdrawal.ended and runtime.settings.withdrawal_erases,
        )

    @post("/dashboard/manage", status_code=303)
    async def manage(
        self, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template | Redirect:
        """A short-lived link to the consent's rights or address page."""
        runtime: Runtime = state.runtime
        await limit_submissions(request, runtime, db)
        session = await self._session(request, runtime, db)
        if session is None:
            return self._signed_out(request, runtime)
        form = await request.form()
        child = await self._owned(db, runtime, session, form.get("consent"))
        if child is None or not child.live:
            return self._not_found(runtime, session.locale)
        where = "address" if form.get("page") == "address" else "rights"
        token = await dashboard.consent_link(db, runtime, session, child.consent.id)
        return Redirect(f"/guardian/{where}/{token}", status_code=303, headers=SECURITY_HEADERS)

    @post("/sign-out", status_code=200)
    async def sign_out(self, request: Request[Any, Any, Any], state: State, db: Db) -> Template:
        runtime: Runtime = state.runtime
        session = await self._session(request, runtime, db)
        await dashboard.sign_out(db, runtime, request.cookies.get(SESSION_COOKIE))
        response = page(
            "dashboard_signed_out",
            locale=session.locale if session else _browser_locale(request),
            operator_name=runtime.settings.operator_name,
        )
        response.cookies.append(_session_cookie(runtime, "", max_age=0))
        return response
