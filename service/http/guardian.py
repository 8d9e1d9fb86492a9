"""Guardian pages: review and decide, and withdraw. GET only renders; POST acts.

Mail scanners prefetch links, so a GET must never use up a link or change anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Template

from service.consent import subjects
from service.consent import workflows as consents
from service.consent.purposes import Purpose
from service.consent.runtime import Runtime
from service.db import rate_limits as ratelimit
from service.db.audit_events import GUARDIAN_ACTOR
from service.http.dependencies import Db
from service.i18n import N_, format_datetime, negotiate_locale, translator
from service.security.tokens import looks_like_link_token

SUBMISSIONS_PER_MINUTE = 30

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

# What the guardian is told about a form that cannot be accepted, by the problem's code.
FORM_ERRORS = {
    "decision": N_("Please choose whether to give or refuse consent."),
    "purposes": N_("Please choose only from the purposes listed on this page."),
    "attestation": N_("Please confirm that you are the child's parent or legal guardian."),
    "confirm": N_("Please confirm that you want to withdraw your consent."),
}
FORM_EXPIRED = N_(
    "The form could not be accepted: it has expired or your browser did not send its security "
    "cookie. Go back, reload the page and submit it again."
)


def page(
    name: str,
    *,
    locale: str,
    http_status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    return Template(
        template_name=f"guardian/{name}.html",
        context={"locale": locale, **context},
        status_code=http_status,
        headers={**SECURITY_HEADERS, **(headers or {})},
        media_type="text/html",
    )


def link_problem(problem: consents.LinkProblem, locale: str | None = None) -> Template:
    headers = {"Retry-After": str(problem.retry_after)} if problem.retry_after else None
    return page(
        "link_problem",
        locale=locale or problem.locale,
        http_status=problem.status,
        headers=headers,
        reason=problem.reason,
    )


def error_page(
    request: Request[Any, Any, Any], status: int, *, headers: dict[str, str] | None = None
) -> Template:
    """An error on a guardian page (bad form, expired CSRF cookie, database down) as HTML."""
    locale = negotiate_locale(request.headers.get("accept-language"))
    message = translator(locale).gettext(FORM_EXPIRED) if status == 403 else ""
    retry = (headers or {}).get("Retry-After")
    return page(
        "error",
        locale=locale,
        http_status=status,
        headers=headers,
        status=status,
        message=message,
        retry_after=int(retry) if retry and retry.isdigit() else None,
    )


def _purpose_views(purposes: Sequence[Purpose], locale: str) -> list[dict[str, Any]]:
    return [
        {
            "id": p.id,
            "title": p.localized_title(locale),
            "description": p.localized_description(locale),
            "required": p.required,
            "data_categories": p.data_categories,
        }
        for p in purposes
    ]


def _titles(runtime: Runtime, ids: Sequence[str], locale: str) -> list[dict[str, str]]:
    return [
        {"id": p.id, "title": p.localized_title(locale)}
        for p in runtime.catalogue.purposes
        if p.id in ids
    ]


def client_address(request: Request[Any, Any, Any], trust_forwarded_for: bool) -> str:
    if trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded:
            # The rightmost entry is the one our own proxy appended; the rest is client-made.
            return forwarded.split(",")[-1].strip()
    return request.client.host if request.client else "unknown"


class GuardianController(Controller):
    path = "/guardian"
    include_in_schema = False

    async def _over_limit(
        self, request: Request[Any, Any, Any], runtime: Runtime, db: Db
    ) -> Template | None:
        address = client_address(request, runtime.settings.trust_forwarded_for)
        bucket = "guardian-post:" + runtime.protector.lookup_hash(address).hex()[:32]
        wait = await ratelimit.hit(
            db, bucket=bucket, limit=SUBMISSIONS_PER_MINUTE, window=60, now=runtime.clock.now()
        )
        if wait is None:
            return None
        return page(
            "error",
            locale="en",
            http_status=429,
            headers={"Retry-After": str(wait)},
            status=429,
            message="Too many submissions from your network. Please wait a minute and try again.",
            retry_after=wait,
        )

    def _review(
        self,
        runtime: Runtime,
        request: Any,
        token: str,
        *,
        errors: Sequence[str] = (),
        selected: set[str] | None = None,
        attested: bool = False,
        status: int = 200,
    ) -> Template:
        locale = request.locale
        language = translator(locale)
        purposes = [p for p in runtime.catalogue.purposes if p.id in request.purposes]
        return page(
            "review",
            locale=locale,
            http_status=status,
            operator_name=runtime.settings.operator_name,
            privacy_notice_url=runtime.settings.privacy_notice_url,
            purposes=_purpose_views(purposes, locale),
            expires_at=format_datetime(request.expires_at, locale),
            form_action=f"/guardian/{token}",
            errors=[language.gettext(FORM_ERRORS[error]) for error in errors],
            selected=selected if selected is not None else set(request.purposes),
            attested=attested,
        )

    @get("/{token:str}")
    async def review(self, token: FromPath[str], state: State, db: Db) -> Template:
        runtime: Runtime = state.runtime
        if not looks_like_link_token(token):
            return link_problem(consents.LinkProblem("unknown", 404))
        try:
            request = await consents.load_for_review(db, runtime, token)
        except consents.LinkProblem as problem:
            return link_problem(problem)
        return self._review(runtime, request, token)

    @post("/{token:str}", status_code=200)
    async def submit(
        self, token: FromPath[str], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        runtime: Runtime = state.runtime
        limited = await self._over_limit(request, runtime, db)
        if limited is not None:
            return limited
        if not looks_like_link_token(token):
            return link_problem(consents.LinkProblem("unknown", 404))
        form = await request.form()
        decision = str(form.get("decision", ""))
        chosen = [str(value) for value in form.getall("purposes", [])]
        attested = form.get("attestation") == "yes"
        try:
            outcome = await consents.decide(
                db, runtime, token=token, decision=decision, chosen=chosen, attested=attested
            )
        except consents.LinkProblem as problem:
            return link_problem(problem)
        except consents.InvalidSubmission as invalid:
            failures = await consents.record_failed_submission(db, invalid.request.id)
            if failures is None:  # decided or erased meanwhile
                return link_problem(consents.LinkProblem("used", 410), invalid.request.locale)
            if failures >= consents.MAX_FAILED_SUBMISSIONS:
                wait = invalid.request.expires_at - runtime.clock.now()
                locked = consents.LinkProblem(
                    "locked", 429, retry_after=max(1, int(wait.total_seconds()))
                )
                return link_problem(locked, invalid.request.locale)
            return self._review(
                runtime,
                invalid.request,
                token,
                errors=invalid.errors,
                selected=set(chosen),
                attested=attested,
                status=422,
            )
        locale = outcome.request.locale
        return page(
            "result",
            locale=locale,
            operator_name=runtime.settings.operator_name,
            outcome=outcome.outcome,
            granted=_titles(runtime, outcome.granted, locale),
            refused=_titles(runtime, outcome.refused, locale),
            withdraw_url=(
                f"/guardian/withdraw/{outcome.withdraw_token}" if outcome.withdraw_token else None
            ),
            confirmation_delay_hours=runtime.settings.confirmation_delay // 3600,
        )

    @get("/withdraw/{token:str}")
    async def withdraw_page(self, token: FromPath[str], state: State, db: Db) -> Template:
        runtime: Runtime = state.runtime
        if not looks_like_link_token(token):
            return link_problem(consents.LinkProblem("unknown", 404))
        try:
            consent = await consents.load_for_withdrawal(db, runtime, token)
        except consents.LinkProblem as problem:
            return link_problem(problem)
        locale = await _consent_locale(db, consent.request_id)
        return page(
            "withdraw",
            locale=locale,
            operator_name=runtime.settings.operator_name,
            purposes=_titles(runtime, consent.purposes, locale),
            granted_at=format_datetime(consent.granted_at, locale),
            form_action=f"/guardian/withdraw/{token}",
            errors=[],
        )

    @post("/withdraw/{token:str}", status_code=200)
    async def withdraw(
        self, token: FromPath[str], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        runtime: Runtime = state.runtime
        limited = await self._over_limit(request, runtime, db)
        if limited is not None:
            return limited
        if not looks_like_link_token(token):
            return link_problem(consents.LinkProblem("unknown", 404))
        form = await request.form()
        try:
            if form.get("confirm") != "yes":
                consent = await consents.load_for_withdrawal(db, runtime, token)
                locale = await _consent_locale(db, consent.request_id)
                return page(
                    "withdraw",
                    locale=locale,
                    http_status=422,
                    operator_name=runtime.settings.operator_name,
                    purposes=_titles(runtime, consent.purposes, locale),
                    granted_at=format_datetime(consent.granted_at, locale),
                    form_action=f"/guardian/withdraw/{token}",
                    errors=[translator(locale).gettext(FORM_ERRORS["confirm"])],
                )
            erase = form.get("erase") == "yes"
            # One transaction: if the erasure the guardian asked for fails, the withdrawal is
            # not committed either, so the same link still works for another try.
            async with db.transaction():
                if erase:
                    # the erasure's locks first, so the audit chain lock is still taken last
                    found = await consents.load_for_withdrawal(db, runtime, token)
                    await subjects.lock_subject(db, found.subject_id)
                ended = await consents.withdraw(db, runtime, token)
                locale = await _consent_locale(db, ended.request_id)
                if erase:
                    # Art. 17: the child's data and the guardian's address go too.
                    await subjects.erase(db, runtime, ended.subject_id, actor=GUARDIAN_ACTOR)
        except consents.LinkProblem as problem:
            return link_problem(problem)
        return page(
            "withdrawn",
            locale=locale,
            operator_name=runtime.settings.operator_name,
            purposes=_titles(runtime, ended.purposes, locale),
            erased=erase,
        )


async def _consent_locale(db: Db, request_id: Any) -> str:
    locale = await db.fetchval("select locale from consent_requests where id = $1", request_id)
    return str(locale or "en")
