"""Console actions on a case: revoke a live consent (with a confirmation showing the guardian's
email word for word), send a reminder, unlock a locked review or withdrawal link, and cancel a
pending request (with a confirmation).

Every action is a CSRF-protected POST for the support role (as on the staff API), calls the
same domain function as the staff API with the session's actor, and answers 303 back to the
subject page, whose status line says what was done (a fixed word in the address, never
anything about the family).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from babel import Locale, UnknownLocaleError
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Redirect, Template

from service.consent import console_actions, console_views, reminders, revocation_reasons, subjects
from service.consent.errors import Conflict, ConsentError, InvalidInput, LimitExceeded, NotFound
from service.consent.revocation_reasons import GuardianReason
from service.consent.runtime import Runtime
from service.consent.staff_sessions import StaffSession
from service.http.console.forms import TEXT
from service.http.console.guard import console_guard, current_session
from service.http.console.rendering import (
    console_exception_handlers,
    console_page,
    locale_of,
    page_headers,
)
from service.http.console.times import console_timezone
from service.http.dependencies import Db
from service.http.patterns import SHOWN_TEXT_PATTERN
from service.i18n import N_, format_datetime, translator

# As the staff API: revoking, reminding, unlocking and cancelling are support's work.
ACTION_ROLES = ("support",)
# remind or unlock: (connection, runtime, staff session, request id) -> the subject id
RequestAction = Callable[[Db, Runtime, StaffSession, uuid.UUID], Awaitable[str]]

SHOWN_TEXT = re.compile(SHOWN_TEXT_PATTERN)

# What the subject page's status line says after each action (``?done=<key>``).
DONE = {
    "revoked": N_("The consent was revoked. The guardian and the app are being told."),
    "reminded": N_("A reminder with a new link is on its way to the guardian."),
    "unlocked": N_("The guardian's review link is unlocked."),
    "withdrawal_unlocked": N_("The guardian's withdrawal link is unlocked."),
    "cancelled": N_("The request was cancelled and the guardian's address deleted."),
}

REASON_INVALID = N_("Enter the internal reason: 3 to 1000 characters.")
NOTE_INVALID = N_("The internal note may have at most 2000 characters.")
GUARDIAN_CHOICE_MISSING = N_("Choose what the guardian reads.")
GUARDIAN_TEXT_INVALID = N_("Write the reason for the guardian on one line, at most 500 characters.")

NOT_FOUND = N_("There is no such consent or request.")
REVOKE_CONFLICT = N_("This consent is no longer in force, so it cannot be revoked.")
REMIND_CONFLICT = N_(
    "A reminder goes only to the guardian of a pending request whose address is still stored."
)
REMIND_LIMIT = N_(
    "The reminder limit is reached: one per request per hour and %(num)d per guardian address "
    "in 24 hours. You can send one again after %(when)s."
)
UNLOCK_CONFLICT = N_("This link is not locked, or the request is no longer pending.")
UNLOCK_WITHDRAWAL_CONFLICT = N_(
    "This withdrawal link is not locked, or the consent is no longer in force."
)
CANCEL_CONFLICT = N_("Only a pending request can be cancelled; this one has been closed.")

OWN_TEXT = "own"
NEUTRAL = "none"


class RevocationForm:
    """The revocation form as submitted, and what is wrong with it (each a message)."""

    def __init__(self, form: Any) -> None:
        self.reason = str(form.get("reason", "")).strip()
        self.note = str(form.get("note", "")).strip()
        self.guardian = str(form.get("guardian", ""))
        self.guardian_text = str(form.get("guardian_text", "")).strip()
        self.errors: dict[str, str] = {}
        if not (3 <= len(self.reason) <= 1000 and TEXT.search(self.reason)):
            self.errors["reason"] = REASON_INVALID
        if self.note and not (len(self.note) <= 2000 and TEXT.search(self.note)):
            self.errors["note"] = NOTE_INVALID
        self.guardian_reason: GuardianReason | None = None
        if self.guardian == OWN_TEXT:
            if len(self.guardian_text) <= 500 and SHOWN_TEXT.search(self.guardian_text):
                self.guardian_reason = GuardianReason(text=self.guardian_text)
            else:
                self.errors["guardian_text"] = GUARDIAN_TEXT_INVALID
        elif self.guardian.startswith(revocation_reasons.PRESET_PREFIX):
            try:
                self.guardian_reason = revocation_reasons.parse_guardian_reason(self.guardian)
            except InvalidInput:
                self.errors["guardian"] = GUARDIAN_CHOICE_MISSING
        elif self.guardian != NEUTRAL:
            self.errors["guardian"] = GUARDIAN_CHOICE_MISSING


def language_name(locale: str | None, shown_in: str) -> str:
    if locale is None:
        return ""
    try:
        return Locale.parse(locale.replace("-", "_")).get_display_name(shown_in) or locale
    except (ValueError, UnknownLocaleError):
        return locale


def done_message(request: Request[Any, Any, Any]) -> str | None:
    key = request.query_params.get("done")
    message = DONE.get(key) if isinstance(key, str) else None
    return translator(locale_of(request)).gettext(message) if message else None


async def case_actions_context(
    db: Db, runtime: Runtime, overview: subjects.SubjectOverview, request: Request[Any, Any, Any]
) -> dict[str, Any]:
    """What the subject page's actions partial needs."""
    actions = await console_actions.case_actions(db, runtime, overview)
    locale = locale_of(request)
    return {
        "pending": actions.pending,
        "live": actions.live,
        "done": done_message(request),
        "language": lambda loc: language_name(loc, locale),
    }


class ConsoleActionsController(Controller):
    path = "/console"
    include_in_schema = False
    guards = [console_guard]
    exception_handlers = console_exception_handlers()

    def _redirect(self, request: Request[Any, Any, Any], subject_id: str, done: str) -> Redirect:
        settings = request.app.state.runtime.settings
        return Redirect(
            f"/console/subjects/{quote(subject_id, safe='')}?done={done}",
            status_code=303,
            headers=page_headers(settings),
        )

    async def _on_request(
        self,
        request: Request[Any, Any, Any],
        state: State,
        db: Db,
        request_id: uuid.UUID,
        act: RequestAction,
        conflict: str,
        done: str,
    ) -> Redirect | Template:
        """An action on a pending request: back to its case, or the page saying why not."""
        try:
            subject_id = await act(db, state.runtime, current_session(request), request_id)
        except ConsentError as error:
            return self._failed(
                request, error, conflict, await self._subject_of(db, state, request_id)
            )
        return self._redirect(request, subject_id, done)

    async def _subject_of(self, db: Db, state: State, request_id: uuid.UUID) -> str | None:
        """The case a failed action on a request leads back to; None for an unknown id."""
        try:
            target = await console_actions.request_target(db, state.runtime, request_id)
        except NotFound:
            return None
        return target.subject_id

    def _failed(
        self,
        request: Request[Any, Any, Any],
        error: ConsentError,
        conflict: str,
        subject_id: str | None = None,
    ) -> Template:
        locale = locale_of(request)
        say = translator(locale)
        headers: dict[str, str] = {}
        if isinstance(error, NotFound):
            status, message = 404, say.gettext(NOT_FOUND)
        elif isinstance(error, LimitExceeded):
            status = 429
            seconds = max(1, int(error.retry_after_seconds + 0.999))
            headers["Retry-After"] = str(seconds)
            after = request.app.state.runtime.clock.now() + timedelta(seconds=seconds)
            message = say.gettext(
                REMIND_LIMIT,
                num=reminders.GUARDIAN_REMINDERS_PER_DAY,
                when=format_datetime(
                    after, locale, console_timezone(request.app.state.runtime.settings)
                ),
            )
        elif isinstance(error, Conflict):
            status, message = 409, say.gettext(conflict)
        else:
            status, message = 422, say.gettext(conflict)
        return console_page(
            request,
            "action_error",
            http_status=status,
            headers=headers,
            status=status,
            message=message,
            subject_id=subject_id,
        )

    # -- revoke ------------------------------------------------------------------------------

    async def _revoke_form(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        runtime: Runtime,
        consent_id: uuid.UUID,
        form: RevocationForm | None,
        http_status: int = 200,
    ) -> Template:
        session = current_session(request)
        try:
            target = await console_actions.revocation_target(db, runtime, consent_id)
        except NotFound as error:
            return self._failed(request, error, NOT_FOUND)
        await console_views.viewed(db, runtime, session, "revoke", subject_id=target.subject_id)
        if not target.live:
            return self._failed(
                request, Conflict("not live"), REVOKE_CONFLICT, subject_id=target.subject_id
            )
        say = translator(locale_of(request))
        return console_page(
            request,
            "revoke",
            http_status=http_status,
            target=target,
            form=form,
            errors={k: say.gettext(v) for k, v in (form.errors if form else {}).items()},
            presets=revocation_reasons.PRESET_REASONS,
            language=language_name(target.locale, locale_of(request)),
        )

    @get("/consents/{consent_id:uuid}/revoke", opt={"roles": ACTION_ROLES})
    async def revoke_form(
        self, consent_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        return await self._revoke_form(request, db, state.runtime, consent_id, None)

    @post("/consents/{consent_id:uuid}/revoke/edit", opt={"roles": ACTION_ROLES}, status_code=200)
    async def revoke_edit(
        self, consent_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        """Back from the confirmation to the form, with what was entered."""
        form = RevocationForm(await request.form())
        form.errors = {}
        return await self._revoke_form(request, db, state.runtime, consent_id, form)

    @post(
        "/consents/{consent_id:uuid}/revoke/confirm", opt={"roles": ACTION_ROLES}, status_code=200
    )
    async def revoke_confirm(
        self, consent_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        runtime: Runtime = state.runtime
        form = RevocationForm(await request.form())
        if form.errors:
            return await self._revoke_form(request, db, runtime, consent_id, form, 422)
        try:
            preview = await console_actions.revocation_preview(
                db, runtime, consent_id, form.guardian_reason
            )
        except NotFound as error:
            return self._failed(request, error, NOT_FOUND)
        await console_views.viewed(
            db,
            runtime,
            current_session(request),
            "revoke_confirm",
            subject_id=preview.target.subject_id,
        )
        if not preview.target.live:
            return self._failed(
                request,
                Conflict("not live"),
                REVOKE_CONFLICT,
                subject_id=preview.target.subject_id,
            )
        return console_page(
            request,
            "revoke_confirm",
            form=form,
            preview=preview,
            language=language_name(preview.target.locale, locale_of(request)),
        )

    @post("/consents/{consent_id:uuid}/revoke", opt={"roles": ACTION_ROLES}, status_code=303)
    async def revoke(
        self, consent_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Redirect | Template:
        runtime: Runtime = state.runtime
        form = RevocationForm(await request.form())
        if form.errors:
            return await self._revoke_form(request, db, runtime, consent_id, form, 422)
        try:
            revoked = await console_actions.revoke(
                db,
                runtime,
                current_session(request),
                consent_id,
                reason=form.reason,
                note=form.note or None,
                guardian_reason=form.guardian_reason,
            )
        except ConsentError as error:
            return self._failed(request, error, REVOKE_CONFLICT)
        return self._redirect(request, revoked.subject_id, "revoked")

    # -- pending requests -------------------------------------------------------------------

    @post("/requests/{request_id:uuid}/remind", opt={"roles": ACTION_ROLES}, status_code=303)
    async def remind(
        self, request_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Redirect | Template:
        return await self._on_request(
            request, state, db, request_id, console_actions.remind, REMIND_CONFLICT, "reminded"
        )

    @post("/requests/{request_id:uuid}/unlock", opt={"roles": ACTION_ROLES}, status_code=303)
    async def unlock(
        self, request_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Redirect | Template:
        return await self._on_request(
            request,
            state,
            db,
            request_id,
            console_actions.unlock_review_link,
            UNLOCK_CONFLICT,
            "unlocked",
        )

    @post(
        "/consents/{consent_id:uuid}/unlock-withdrawal",
        opt={"roles": ACTION_ROLES},
        status_code=303,
    )
    async def unlock_withdrawal(
        self, consent_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Redirect | Template:
        try:
            subject_id = await console_actions.unlock_withdrawal_link(
                db, state.runtime, current_session(request), consent_id
            )
        except ConsentError as error:
            return self._failed(request, error, UNLOCK_WITHDRAWAL_CONFLICT)
        return self._redirect(request, subject_id, "withdrawal_unlocked")

    @get("/requests/{request_id:uuid}/cancel", opt={"roles": ACTION_ROLES})
    async def cancel_confirm(
        self, request_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        runtime: Runtime = state.runtime
        try:
            target = await console_actions.request_target(db, runtime, request_id)
        except NotFound as error:
            return self._failed(request, error, NOT_FOUND)
        await console_views.viewed(
            db, runtime, current_session(request), "cancel", subject_id=target.subject_id
        )
        if not target.pending:
            return self._failed(
                request, Conflict("closed"), CANCEL_CONFLICT, subject_id=target.subject_id
            )
        return console_page(request, "cancel_confirm", target=target)

    @post("/requests/{request_id:uuid}/cancel", opt={"roles": ACTION_ROLES}, status_code=303)
    async def cancel(
        self, request_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], state: State, db: Db
    ) -> Redirect | Template:
        try:
            subject_id = await console_actions.cancel_request(
                db, state.runtime, current_session(request), request_id
            )
        except ConsentError as error:
            return self._failed(request, error, CANCEL_CONFLICT)
        return self._redirect(request, subject_id, "cancelled")
