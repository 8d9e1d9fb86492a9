"""The handoff pages (``/guardian/code``): the parent types the code from the child's screen,
gives their own address, confirms it with the code emailed there, and goes on to the review
page. GET only renders; POST acts (behind the CSRF check and the submission limits)."""

from __future__ import annotations

import contextlib
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Redirect, Template

from service.consent import handoff, policy
from service.consent.errors import FormError, LimitExceeded
from service.consent.handoff import AddressProblem, HandoffError, WrongOneTimeCode
from service.consent.runtime import Runtime
from service.http.client_address import limit_keys
from service.http.dependencies import Db
from service.http.guardian import _striking, client_address, limit_submissions
from service.http.guardian_pages import FORM_ERRORS, SECURITY_HEADERS, page
from service.http.problems import guardian_exception_handlers, retry_after, retry_after_headers
from service.i18n import N_, format_datetime, negotiate_locale, translator
from service.security.tokens import looks_like_link_token
from service.states import HandoffProblem

PROBLEM_TEXTS = {
    HandoffProblem.UNKNOWN: N_(
        "This code was not recognised. Please check it on the child's screen and type it again."
    ),
    HandoffProblem.USED: N_(
        "This code has already been used. If that was not you, ask for a new code on the "
        "child's screen."
    ),
    HandoffProblem.EXPIRED: N_(
        "This code has expired. Please ask for a new code on the child's screen."
    ),
    HandoffProblem.LOCKED: N_(
        "This code is locked because a wrong code was entered too many times. Please ask for "
        "a new code on the child's screen."
    ),
    HandoffProblem.ENDED: N_(
        "This request has already been answered, cancelled or has expired, so nothing more "
        "can be done here."
    ),
    HandoffProblem.SESSION_ENDED: N_(
        "This page can no longer be used. Please type the code from the child's screen again; "
        "if it no longer works, ask for a new one there."
    ),
}
PROBLEM_STATUS = {
    HandoffProblem.UNKNOWN: 422,
    HandoffProblem.USED: 410,
    HandoffProblem.EXPIRED: 410,
    HandoffProblem.LOCKED: 429,
    HandoffProblem.ENDED: 410,
    HandoffProblem.SESSION_ENDED: 410,
}
EMAIL_INVALID = FORM_ERRORS[FormError.EMAIL_INVALID]
TOO_MANY_CODES = N_(
    "Too many codes have been asked for this request or this address, so no new code was "
    "sent. Please use the code you already have, or try again tomorrow."
)
OTP_WRONG = N_("This code is not the one we sent. Please check the email and type it again.")
OTP_EXPIRED = N_("This code has expired. Please enter your address again to get a new one.")
OTP_EXPIRED_ON_FILE = N_("This code has expired. Please ask for a new one below.")
WRONG_CODES_FROM_NETWORK = N_(
    "Too many wrong codes have been entered from your network, so this one was not checked."
)

strike_refused_handoff_forms = _striking(handoff.strike_refused)


def _session_path(token: str) -> str:
    return f"{handoff.PATH}/{token}"


def _require_plausible_session(token: str) -> None:
    if not looks_like_link_token(token):
        raise HandoffError(HandoffProblem.SESSION_ENDED)


def _code_form(
    runtime: Runtime,
    locale: str,
    *,
    error: str | None = None,
    code: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Template:
    return page(
        "handoff_code",
        locale=locale,
        http_status=status,
        headers=headers,
        operator_name=runtime.settings.operator_name,
        form_action=handoff.PATH,
        errors=[error] if error else [],
        field_errors={"code": [error]} if error else {},
        code=code,
    )


def _address_form(
    runtime: Runtime,
    locale: str,
    token: str,
    *,
    error: str | None = None,
    email: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Template:
    return page(
        "handoff_address",
        locale=locale,
        http_status=status,
        headers=headers,
        operator_name=runtime.settings.operator_name,
        form_action=_session_path(token),
        errors=[error] if error else [],
        field_errors={"email": [error]} if error else {},
        email=email,
    )


def _otp_form(
    runtime: Runtime,
    session: handoff.Session,
    token: str,
    *,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Template:
    """The page of the emailed code; with the address the app gave, it also names that address
    (masked) and offers a new code, never another address."""
    locale = session.request.locale
    sent = handoff.code_sent(runtime, session)
    return page(
        "handoff_confirm",
        locale=locale,
        http_status=status,
        headers=headers,
        operator_name=runtime.settings.operator_name,
        form_action=f"{_session_path(token)}/confirm",
        address_url=_session_path(token),
        address_on_file=handoff.address_on_file(runtime, session),
        masked_address=sent.masked_address if sent else None,
        expires_at=(
            format_datetime(sent.expires_at, locale, policy.display_timezone(sent.country))
            if sent
            else None
        ),
        errors=[error] if error else [],
        field_errors={"otp": [error]} if error else {},
    )


def _problem_page(request: Request[Any, Any, Any], exc: HandoffError) -> Template:
    """A code or session that cannot be used any more: said on the code page, where a new
    code can be typed."""
    locale = exc.locale or negotiate_locale(request.headers.get("accept-language"))
    headers = (
        {"Retry-After": retry_after(exc.retry_after_seconds)}
        if exc.retry_after_seconds is not None
        else None
    )
    message = translator(locale).gettext(PROBLEM_TEXTS[exc.problem])
    template = page(
        "handoff_code",
        locale=locale,
        http_status=PROBLEM_STATUS[exc.problem],
        headers=headers,
        errors=[message],
        field_errors={},
        code="",
        form_action=handoff.PATH,
        operator_name=request.app.state.runtime.settings.operator_name,
    )
    return template


class HandoffController(Controller):
    """Every problem is answered with the page it concerns, the message at the top."""

    path = handoff.PATH
    include_in_schema = False
    exception_handlers = {
        **guardian_exception_handlers(),
        HandoffError: _problem_page,
    }

    @get("/")
    async def code_page(self, request: Request[Any, Any, Any], state: State) -> Template:
        runtime: Runtime = state.runtime
        locale = negotiate_locale(request.headers.get("accept-language"))
        return _code_form(runtime, locale)

    @post("/", status_code=200)
    async def enter_code(
        self, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template | Redirect:
        runtime: Runtime = state.runtime
        await limit_submissions(request, runtime, db)
        form = await request.form()
        raw = str(form.get("code", ""))[:64]
        key = limit_keys(client_address(request, runtime.settings))[-1][1]
        bucket = "handoff-code:" + runtime.protector.lookup_hash(key).hex()[:32]
        locale = negotiate_locale(request.headers.get("accept-language"))
        try:
            opened = await handoff.open_with_code(db, runtime, raw, strike_bucket=bucket)
        except LimitExceeded as limit:
            return _code_form(
                runtime,
                locale,
                error=translator(locale).gettext(WRONG_CODES_FROM_NETWORK),
                status=429,
                headers=retry_after_headers(limit),
            )
        except HandoffError as problem:
            return _code_form(
                runtime,
                locale,
                error=translator(locale).gettext(PROBLEM_TEXTS[problem.problem]),
                code=raw if problem.problem == HandoffProblem.UNKNOWN else "",
                status=PROBLEM_STATUS[problem.problem],
            )
        if opened.address_on_file:
            # No address is asked for: the code goes to the one the app gave, at once.
            # Over a limit, none is sent: the next page says no code was sent, and asking for
            # a new one there says why.
            with contextlib.suppress(AddressProblem):
                await handoff.send_one_time_code(db, runtime, opened.session_token, None)
            return Redirect(
                f"{_session_path(opened.session_token)}/confirm",
                status_code=303,
                headers=SECURITY_HEADERS,
            )
        # 303: a reload of the next page does not send the code again
        return Redirect(
            _session_path(opened.session_token), status_code=303, headers=SECURITY_HEADERS
        )

    @get("/{token:str}")
    async def session_page(self, token: FromPath[str], state: State, db: Db) -> Template:
        runtime: Runtime = state.runtime
        _require_plausible_session(token)
        session = await handoff.load_session(db, runtime, token)
        if handoff.address_on_file(runtime, session) is not None:
            return _otp_form(runtime, session, token)
        return _address_form(runtime, session.request.locale, token)

    @post("/{token:str}", status_code=200, middleware=[strike_refused_handoff_forms])
    async def give_address(
        self, token: FromPath[str], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template | Redirect:
        runtime: Runtime = state.runtime
        await limit_submissions(request, runtime, db)
        _require_plausible_session(token)
        form = await request.form()
        # as typed, but without the spaces phone keyboards and autofill add
        email = str(form.get("email", "")).strip()
        try:
            await handoff.send_one_time_code(db, runtime, token, email)
        except AddressProblem as problem:
            session = await handoff.load_session(db, runtime, token)
            locale = session.request.locale
            headers = (
                {"Retry-After": retry_after(problem.retry_after_seconds)}
                if problem.retry_after_seconds is not None
                else None
            )
            if handoff.address_on_file(runtime, session) is not None:
                return _otp_form(
                    runtime,
                    session,
                    token,
                    error=translator(locale).gettext(TOO_MANY_CODES),
                    status=429,
                    headers=headers,
                )
            return _address_form(
                runtime,
                locale,
                token,
                error=translator(locale).gettext(
                    EMAIL_INVALID if problem.invalid else TOO_MANY_CODES
                ),
                email=email[:254],
                status=422 if problem.invalid else 429,
                headers=headers,
            )
        # 303: a reload or the back button does not send another code
        return Redirect(
            f"{_session_path(token)}/confirm", status_code=303, headers=SECURITY_HEADERS
        )

    @get("/{token:str}/confirm")
    async def confirm_page(self, token: FromPath[str], state: State, db: Db) -> Template:
        runtime: Runtime = state.runtime
        _require_plausible_session(token)
        session = await handoff.load_session(db, runtime, token)
        on_file = handoff.address_on_file(runtime, session) is not None
        if handoff.code_sent(runtime, session) is None and not on_file:
            return _address_form(runtime, session.request.locale, token)
        return _otp_form(runtime, session, token)

    @post("/{token:str}/confirm", status_code=200, middleware=[strike_refused_handoff_forms])
    async def confirm(
        self, token: FromPath[str], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template | Redirect:
        runtime: Runtime = state.runtime
        await limit_submissions(request, runtime, db)
        _require_plausible_session(token)
        form = await request.form()
        raw = str(form.get("otp", ""))[:32]
        try:
            link_token = await handoff.confirm_address(db, runtime, token, raw)
        except WrongOneTimeCode as wrong:
            session = await handoff.load_session(db, runtime, token)
            locale = session.request.locale
            expired = (
                OTP_EXPIRED_ON_FILE
                if handoff.address_on_file(runtime, session) is not None
                else OTP_EXPIRED
            )
            return _otp_form(
                runtime,
                session,
                token,
                error=translator(locale).gettext(expired if wrong.expired else OTP_WRONG),
                status=422,
            )
        # On to the review page, as the emailed link would open it.
        return Redirect(f"/guardian/{link_token}", status_code=303, headers=SECURITY_HEADERS)
