"""Guardian pages: review and decide, and withdraw. GET only renders; POST acts.

Mail scanners prefetch links, so a GET must never use up a link or change anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath
from litestar.response import Template
from litestar.types import ASGIApp, Receive, Scope, Send

from service.consent import (
    decisions,
    endings,
    notifications,
    policy,
    rectification,
    subjects,
    verification,
)
from service.consent.errors import (
    Conflict,
    FormError,
    InvalidAddressChange,
    InvalidSubmission,
    InvalidWithdrawal,
    LimitExceeded,
    LinkProblem,
)
from service.consent.purposes import Purpose
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import handoffs as handoffs_repo
from service.db import rate_limits
from service.db.audit_events import GUARDIAN_ACTOR
from service.db.connection import Connection
from service.db.consent_requests import ConsentRequest
from service.db.consents import Consent
from service.db.pool import borrow
from service.http.client_address import IPAddress, client_ip, limit_keys
from service.http.dependencies import Db
from service.http.guardian_pages import form_errors, page
from service.http.problems import guardian_exception_handlers, retry_after_headers
from service.i18n import DEFAULT_LOCALE, format_datetime
from service.security.tokens import looks_like_link_token
from service.settings import Settings
from service.states import DataRequestChannel, LinkProblemReason

# Guardian form submissions per minute: per client address, and per IPv6 /64 (a network with
# room for several devices, each with an address of its own; rotating through it gains at most
# this much).
SUBMISSIONS_PER_MINUTE = 30
SUBMISSIONS_PER_MINUTE_PER_IPV6_64 = 60
# Per kind of ``limit_keys``: the counter's name prefix and its limit.
_SUBMISSION_LIMITS = {
    "address": ("guardian-post:", SUBMISSIONS_PER_MINUTE),
    "ipv6-64": ("guardian-post-64:", SUBMISSIONS_PER_MINUTE_PER_IPV6_64),
}


def _purpose_views(purposes: Sequence[Purpose], locale: str) -> list[dict[str, Any]]:
    return [
        {
            "id": p.id,
            "title": p.localized_title(locale),
            "description": p.localized_description(locale),
            "required": p.required,
        }
        for p in purposes
    ]


def _titles(runtime: Runtime, ids: Sequence[str], locale: str) -> list[dict[str, str]]:
    return [{"id": p.id, "title": p.localized_title(locale)} for p in runtime.catalogue.among(ids)]


def client_address(request: Request[Any, Any, Any], settings: Settings) -> IPAddress | None:
    """Where the request comes from; ``X-Forwarded-For`` only as far as trusted proxies wrote
    it (``service.http.client_address``)."""
    return client_ip(
        request.client.host if request.client else None,
        request.headers.getall("x-forwarded-for", []),
        trusted_proxies=settings.trusted_proxies,
        trust_any_peer=settings.trust_forwarded_for,
    )


async def limit_submissions(request: Request[Any, Any, Any], runtime: Runtime, db: Db) -> None:
    """Every guardian form counts against its network's limits (``_SUBMISSION_LIMITS``)."""
    waits = []
    for kind, key in limit_keys(client_address(request, runtime.settings)):
        prefix, limit = _SUBMISSION_LIMITS[kind]
        # A keyed hash: a client's address is personal data.
        bucket = prefix + runtime.protector.lookup_hash(key).hex()[:32]
        wait = await rate_limits.hit(
            db, bucket=bucket, limit=limit, window=60, now=runtime.clock.now()
        )
        if wait is not None:
            waits.append(wait)
    if waits:
        raise LimitExceeded(
            "Too many submissions from this network; try again later.",
            retry_after_seconds=max(waits),
        )


def require_plausible_token(token: str) -> None:
    """A token that cannot be one of ours is not looked up at all."""
    if not looks_like_link_token(token):
        raise LinkProblem(LinkProblemReason.UNKNOWN)


Strike = Callable[[Connection, Runtime, str], Awaitable[None]]


def _striking(strike: Strike) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware around Litestar's CSRF check: a submission it refuses counts against the
    link in the path (``strike`` may raise the locked-link problem instead). Only such
    submissions count; honest form mistakes reach the handler and never do."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def striking(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await app(scope, receive, send)
            except PermissionDeniedException:
                token = str(scope["path_params"].get("token", ""))
                if looks_like_link_token(token):
                    state = scope["litestar_app"].state
                    async with borrow(state.pool) as connection:
                        await strike(connection, state.runtime, token)
                raise

        return striking

    return middleware


strike_refused_submissions = _striking(decisions.strike_refused_submission)
strike_refused_withdrawals = _striking(endings.strike_refused_withdrawal)


class GuardianController(Controller):
    """Every error below is answered with a page (``problems.guardian_exception_handlers``)."""

    path = "/guardian"
    include_in_schema = False
    exception_handlers = guardian_exception_handlers()

    async def _limit_submissions(
        self, request: Request[Any, Any, Any], runtime: Runtime, db: Db
    ) -> None:
        await limit_submissions(request, runtime, db)

    def _review(
        self,
        runtime: Runtime,
        request: ConsentRequest,
        token: str,
        *,
        errors: Sequence[FormError] = (),
        selected: frozenset[str] = frozenset(),
        attested: bool = False,
        status: int = 200,
        via_handoff: bool = False,
    ) -> Template:
        """The review form; an optional purpose is ticked only when the guardian ticked it
        (a pre-ticked box is no consent), a required one is always shown ticked as required."""
        locale = request.locale
        purposes = runtime.catalogue.among(request.purposes)
        beyond_method = verification.needs_stronger_method(
            purposes, request.country, runtime.clock.now()
        )
        notice = runtime.notice(locale)
        return page(
            "review",
            locale=locale,
            http_status=status,
            operator_name=runtime.settings.operator_name,
            privacy_notice_url=runtime.settings.privacy_notice_url,
            notice=notice,
            purposes=[
                {
                    **msgspec.structs.asdict(purpose),
                    "needs_stronger_method": purpose.id in beyond_method,
                }
                for purpose in notice.among(request.purposes)
            ],
            child_agreed=request.child_agreed is True,
            # the parent gave and confirmed the address themselves (the handoff), not the child
            via_handoff=via_handoff,
            child_hint=notifications.child_hint(runtime, request),
            expires_at=format_datetime(
                request.expires_at, locale, policy.display_timezone(request.country)
            ),
            form_action=f"/guardian/{token}",
            **form_errors(errors, locale),
            selected=selected,
            attested=attested,
        )

    @get("/{token:str}")
    async def review(self, token: FromPath[str], state: State, db: Db) -> Template:
        runtime: Runtime = state.runtime
        require_plausible_token(token)
        request = await decisions.load_for_review(db, runtime, token)
        via_handoff = await handoffs_repo.address_came_by_handoff(db, request.id)
        return self._review(runtime, request, token, via_handoff=via_handoff)

    @post("/{token:str}", status_code=200, middleware=[strike_refused_submissions])
    async def submit(
        self, token: FromPath[str], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        runtime: Runtime = state.runtime
        await self._limit_submissions(request, runtime, db)
        require_plausible_token(token)
        form = await request.form()
        decision = str(form.get("decision", ""))
        chosen = [str(value) for value in form.getall("purposes", [])]
        attested = form.get("attestation") == "yes"
        shown = form.get("notice_version")
        try:
            outcome = await decisions.decide(
                db,
                runtime,
                token=token,
                decision=decision,
                chosen=chosen,
                attested=attested,
                notice_shown=str(shown) if shown is not None else None,
            )
        except InvalidSubmission as invalid:
            # An honest mistake: shown again, never counted against the link.
            return self._review(
                runtime,
                invalid.request,
                token,
                errors=invalid.errors,
                selected=frozenset(chosen),
                attested=attested,
                status=422,
                via_handoff=await handoffs_repo.address_came_by_handoff(db, invalid.request.id),
            )
        locale = outcome.request.locale
        return page(
            "result",
            locale=locale,
            operator_name=runtime.settings.operator_name,
            outcome=outcome.outcome,
            child_hint=notifications.child_hint(runtime, outcome.request),
            granted=_titles(runtime, outcome.granted, locale),
            refused=_titles(runtime, outcome.refused, locale),
            withdraw_url=(
                f"/guardian/withdraw/{outcome.withdraw_token}" if outcome.withdraw_token else None
            ),
            confirmation_delay_hours=runtime.settings.confirmation_delay // 3600,
        )

    async def _withdraw_form(
        self,
        db: Db,
        runtime: Runtime,
        consent: Consent,
        token: str,
        *,
        errors: Sequence[FormError] = (),
        selected: frozenset[str] = frozenset(),
        erase: bool = False,
        status: int = 200,
    ) -> Template:
        """The withdrawal form: every purpose still granted, none ticked; the only one of a
        single-purpose consent ticked (its button then withdraws at once, after the confirm)."""
        locale = await _consent_locale(db, consent.request_id)
        if not selected and not errors and len(consent.purposes) == 1:
            selected = frozenset(consent.purposes)
        return page(
            "withdraw",
            child_hint=await consent_child_hint(db, runtime, consent),
            locale=locale,
            http_status=status,
            operator_name=runtime.settings.operator_name,
            purposes=_purpose_views(runtime.catalogue.among(consent.purposes), locale),
            granted_at=format_datetime(
                consent.granted_at, locale, policy.display_timezone(consent.jurisdiction)
            ),
            form_action=f"/guardian/withdraw/{token}",
            address_url=f"/guardian/address/{token}",
            rights_url=f"/guardian/rights/{token}",
            **form_errors(errors, locale),
            selected=selected,
            erase=erase,
            # with CONSENT_WITHDRAWAL_ERASES a full withdrawal erases anyway: nothing to choose
            offer_erase=not runtime.settings.withdrawal_erases,
        )

    @get("/withdraw/{token:str}")
    async def withdraw_page(self, token: FromPath[str], state: State, db: Db) -> Template:
        runtime: Runtime = state.runtime
        require_plausible_token(token)
        consent = await endings.load_for_withdrawal(db, runtime, token)
        return await self._withdraw_form(db, runtime, consent, token)

    @post("/withdraw/{token:str}", status_code=200, middleware=[strike_refused_withdrawals])
    async def withdraw(
        self, token: FromPath[str], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        runtime: Runtime = state.runtime
        await self._limit_submissions(request, runtime, db)
        require_plausible_token(token)
        form = await request.form()
        chosen = [str(value) for value in form.getall("purposes", [])]
        erase = form.get("erase") == "yes" and not runtime.settings.withdrawal_erases
        if form.get("confirm") != "yes":
            consent = await endings.load_for_withdrawal(db, runtime, token)
            return await self._withdraw_form(
                db,
                runtime,
                consent,
                token,
                errors=[FormError.CONFIRM],
                selected=frozenset(chosen),
                erase=erase,
                status=422,
            )
        try:
            # One transaction: if the erasure the guardian asked for fails, the withdrawal is
            # not committed either, so the same link still works for another try.
            async with db.transaction():
                if erase:
                    # the erasure's locks first, so the audit chain lock is still taken last
                    found = await endings.load_for_withdrawal(db, runtime, token)
                    await subjects.lock_subject_records(db, found.subject_id)
                # read before a withdrawal that erases deletes it
                child_hint = await consent_child_hint(
                    db, runtime, await endings.load_for_withdrawal(db, runtime, token)
                )
                outcome = await endings.withdraw_purposes(db, runtime, token, chosen, erase=erase)
                locale = await _consent_locale(db, outcome.consent.request_id)
                if erase:
                    # Art. 17: the child's data and the guardian's address go too.
                    await subjects.erase(
                        db, runtime, outcome.consent.subject_id, actor=GUARDIAN_ACTOR
                    )
        except InvalidWithdrawal as invalid:
            return await self._withdraw_form(
                db,
                runtime,
                invalid.consent,
                token,
                errors=invalid.errors,
                selected=frozenset(chosen),
                erase=erase,
                status=422,
            )
        return page(
            "withdrawn",
            locale=locale,
            child_hint=child_hint,
            operator_name=runtime.settings.operator_name,
            purposes=_titles(runtime, outcome.withdrawn, locale),
            remaining=[] if outcome.ended else _titles(runtime, outcome.consent.purposes, locale),
            withdraw_url=None if outcome.ended else f"/guardian/withdraw/{token}",
            erased=erase,
            erased_on_withdrawal=outcome.ended and runtime.settings.withdrawal_erases,
        )

    async def _address_form(
        self,
        db: Db,
        runtime: Runtime,
        consent: Consent,
        token: str,
        *,
        errors: Sequence[FormError] = (),
        email: str = "",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Template:
        """The form for a new address; the current one is never shown (the link may travel)."""
        locale = await _consent_locale(db, consent.request_id)
        return page(
            "address",
            locale=locale,
            child_hint=await consent_child_hint(db, runtime, consent),
            http_status=status,
            headers=headers,
            operator_name=runtime.settings.operator_name,
            form_action=f"/guardian/address/{token}",
            withdraw_url=f"/guardian/withdraw/{token}",
            **form_errors(errors, locale),
            email=email,
        )

    @get("/address/{token:str}")
    async def address_page(self, token: FromPath[str], state: State, db: Db) -> Template:
        runtime: Runtime = state.runtime
        require_plausible_token(token)
        consent = await endings.load_for_withdrawal(db, runtime, token)
        return await self._address_form(db, runtime, consent, token)

    @post("/address/{token:str}", status_code=200, middleware=[strike_refused_withdrawals])
    async def change_address(
        self, token: FromPath[str], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        """Send a confirmation link to the new address; the address changes only once it is
        confirmed from there."""
        runtime: Runtime = state.runtime
        await self._limit_submissions(request, runtime, db)
        require_plausible_token(token)
        form = await request.form()
        email = str(form.get("email", ""))
        consent = await endings.load_for_withdrawal(db, runtime, token)
        try:
            started = await rectification.start_address_change(
                db,
                runtime,
                consent.id,
                new_email=email,
                actor=GUARDIAN_ACTOR,
                channel=DataRequestChannel.GUARDIAN_PAGE,
            )
        except InvalidAddressChange as invalid:
            return await self._address_form(
                db,
                runtime,
                invalid.consent,
                token,
                errors=invalid.errors,
                email=email[:254],
                status=422,
            )
        except LimitExceeded as limit:
            return await self._address_form(
                db,
                runtime,
                consent,
                token,
                errors=[FormError.ADDRESS_CHANGES_EXHAUSTED],
                email=email[:254],
                status=429,
                headers=retry_after_headers(limit),
            )
        except Conflict:
            # ended between loading it and changing it
            raise LinkProblem(LinkProblemReason.NOT_LIVE) from None
        locale = await _consent_locale(db, consent.request_id)
        return page(
            "address_sent",
            locale=locale,
            child_hint=await consent_child_hint(db, runtime, consent),
            operator_name=runtime.settings.operator_name,
            expires_at=format_datetime(
                started.expires_at, locale, policy.display_timezone(consent.jurisdiction)
            ),
            withdraw_url=f"/guardian/withdraw/{token}",
        )

    @get("/address/confirm/{token:str}")
    async def address_confirm_page(self, token: FromPath[str], state: State, db: Db) -> Template:
        """Shows what a press of the button does; a mail scanner's GET changes nothing."""
        runtime: Runtime = state.runtime
        require_plausible_token(token)
        pending = await rectification.load_for_confirmation(db, runtime, token)
        return page(
            "address_confirm",
            locale=pending.locale,
            child_hint=await consent_child_hint(db, runtime, pending.consent),
            operator_name=runtime.settings.operator_name,
            form_action=f"/guardian/address/confirm/{token}",
            new_address=pending.masked_address,
        )

    @post("/address/confirm/{token:str}", status_code=200)
    async def confirm_address(
        self, token: FromPath[str], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        runtime: Runtime = state.runtime
        await self._limit_submissions(request, runtime, db)
        require_plausible_token(token)
        confirmed = await rectification.confirm_address_change(db, runtime, token)
        return page(
            "address_changed",
            locale=confirmed.locale,
            operator_name=runtime.settings.operator_name,
            new_address=confirmed.masked_address,
        )


async def consent_child_hint(db: Db, runtime: Runtime, consent: Consent) -> str | None:
    """Which account the consent is about (``child_hint``), shown on every consent page."""
    request = await requests_repo.get_request(db, consent.request_id)
    return notifications.child_hint(runtime, request) if request is not None else None


async def _consent_locale(db: Db, request_id: uuid.UUID) -> str:
    return await requests_repo.locale_of(db, request_id) or DEFAULT_LOCALE
