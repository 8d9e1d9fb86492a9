"""The guardian's "Your data and your rights" page, reached with the withdrawal link.

Each form acts on the consent behind the link and is tracked as a data request
(``service.consent.self_service``); like the withdrawal form, a submission the CSRF check
refuses counts against the link, and every submission against the network's limits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Template

from service.consent import endings, self_service
from service.consent.errors import FormError, InvalidWithdrawal
from service.consent.runtime import Runtime
from service.db.consents import Consent
from service.http.dependencies import Db
from service.http.guardian import (
    _consent_locale,
    _titles,
    consent_child_hint,
    limit_submissions,
    require_plausible_token,
    strike_refused_withdrawals,
)
from service.http.guardian_pages import form_errors, page
from service.http.problems import guardian_exception_handlers
from service.i18n import format_datetime
from service.states import DataRequestKind

COMPLAINT_MAX_CHARS = 2000
# Line breaks and tabs are what a text box sends; other control characters are not.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _complaint_text(raw: object) -> str | None:
    text = str(raw or "").strip()
    if not text or len(text) > COMPLAINT_MAX_CHARS or _CONTROL.search(text):
        return None
    return text


class GuardianRightsController(Controller):
    """Every error below is answered with a page (``problems.guardian_exception_handlers``)."""

    path = "/guardian/rights"
    include_in_schema = False
    exception_handlers = guardian_exception_handlers()

    async def _rights_page(
        self,
        db: Db,
        runtime: Runtime,
        consent: Consent,
        token: str,
        *,
        errors: Sequence[FormError] = (),
        selected: frozenset[str] = frozenset(),
        complaint: str = "",
        status: int = 200,
    ) -> Template:
        locale = await _consent_locale(db, consent.request_id)
        settings = runtime.settings
        notice = runtime.notice(locale)
        return page(
            "rights",
            locale=locale,
            child_hint=await consent_child_hint(db, runtime, consent),
            http_status=status,
            operator_name=settings.operator_name,
            operator=notice.operator,
            authority=settings.operator_supervisory_authority,
            privacy_notice_url=settings.privacy_notice_url,
            due_days=settings.data_request_due_days,
            complaint_due_working_days=settings.complaint_due_working_days,
            optional_purposes=[
                {"id": p.id, "title": p.localized_title(locale)}
                for p in runtime.catalogue.among(consent.purposes)
                if not p.required
            ],
            base=f"/guardian/rights/{token}",
            withdraw_url=f"/guardian/withdraw/{token}",
            address_url=f"/guardian/address/{token}",
            **form_errors(errors, locale),
            selected=selected,
            complaint=complaint,
            complaint_max_chars=COMPLAINT_MAX_CHARS,
        )

    def _done(
        self,
        runtime: Runtime,
        locale: str,
        tracked: self_service.Tracked,
        **context: Any,
    ) -> Template:
        return page(
            "rights_done",
            locale=locale,
            operator_name=runtime.settings.operator_name,
            kind=tracked.kind,
            reference=str(tracked.id),
            received_at=format_datetime(tracked.received_at, locale),
            due_at=format_datetime(tracked.due_at, locale),
            **context,
        )

    @get("/{token:str}")
    async def rights(self, token: FromPath[str], state: State, db: Db) -> Template:
        runtime: Runtime = state.runtime
        require_plausible_token(token)
        consent = await endings.load_for_withdrawal(db, runtime, token)
        return await self._rights_page(db, runtime, consent, token)

    @post("/{token:str}/copy", status_code=200, middleware=[strike_refused_withdrawals])
    async def copy(
        self, token: FromPath[str], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        runtime: Runtime = state.runtime
        await limit_submissions(request, runtime, db)
        require_plausible_token(token)
        form = await request.form()
        kind = (
            DataRequestKind.PORTABILITY
            if form.get("kind") == DataRequestKind.PORTABILITY
            else DataRequestKind.ACCESS
        )
        consent = await endings.load_for_withdrawal(db, runtime, token)
        locale = await _consent_locale(db, consent.request_id)
        tracked = await self_service.send_copy(db, runtime, token, kind)
        return self._done(runtime, locale, tracked)

    @post("/{token:str}/erase", status_code=200, middleware=[strike_refused_withdrawals])
    async def erase(
        self, token: FromPath[str], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        runtime: Runtime = state.runtime
        await limit_submissions(request, runtime, db)
        require_plausible_token(token)
        form = await request.form()
        consent = await endings.load_for_withdrawal(db, runtime, token)
        locale = await _consent_locale(db, consent.request_id)
        if form.get("erase_confirm") != "yes":
            return await self._rights_page(
                db, runtime, consent, token, errors=[FormError.ERASE_CONFIRM], status=422
            )
        tracked = await self_service.erase(db, runtime, token)
        return self._done(runtime, locale, tracked)

    @post("/{token:str}/object", status_code=200, middleware=[strike_refused_withdrawals])
    async def object_to(
        self, token: FromPath[str], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        runtime: Runtime = state.runtime
        await limit_submissions(request, runtime, db)
        require_plausible_token(token)
        form = await request.form()
        chosen = [str(value) for value in form.getall("purposes", [])]
        consent = await endings.load_for_withdrawal(db, runtime, token)
        locale = await _consent_locale(db, consent.request_id)
        # only the optional purposes are offered: objecting to a required one is a withdrawal
        offered = {p.id for p in runtime.catalogue.among(consent.purposes) if not p.required}
        if any(purpose not in offered for purpose in chosen):
            errors = [FormError.PURPOSES]
        else:
            try:
                withdrawal, tracked = await self_service.object_to(db, runtime, token, chosen)
            except InvalidWithdrawal as invalid:
                errors = invalid.errors
            else:
                return self._done(
                    runtime,
                    locale,
                    tracked,
                    purposes=_titles(runtime, withdrawal.withdrawn, locale),
                )
        return await self._rights_page(
            db, runtime, consent, token, errors=errors, selected=frozenset(chosen), status=422
        )

    @post("/{token:str}/complaint", status_code=200, middleware=[strike_refused_withdrawals])
    async def complaint(
        self, token: FromPath[str], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        runtime: Runtime = state.runtime
        await limit_submissions(request, runtime, db)
        require_plausible_token(token)
        form = await request.form()
        consent = await endings.load_for_withdrawal(db, runtime, token)
        locale = await _consent_locale(db, consent.request_id)
        text = _complaint_text(form.get("complaint"))
        if text is None:
            return await self._rights_page(
                db,
                runtime,
                consent,
                token,
                errors=[FormError.COMPLAINT],
                complaint=str(form.get("complaint") or "")[: COMPLAINT_MAX_CHARS * 2],
                status=422,
            )
        tracked = await self_service.complain(db, runtime, token, text)
        return self._done(runtime, locale, tracked)
