"""Rights work in the console: the rights-requests queue, and on a child's case restriction,
rectification, export and erasure.

Every action is the staff API's domain function called with the session's staff member, so
console and API stay one behaviour (same rules, same limits, same audit events). A form that
cannot be acted on answers a page saying why, in the staff member's language, and changes
nothing. Rectification and lifting a restriction show what will happen first and act on the
confirmed form; erasure asks for a reason category (and, optionally, the rights request it
answers) and the subject id typed again.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import PathParameter
from litestar.response import Redirect, Template

from service.consent import (
    console_rights,
    console_views,
    data_requests,
    rectification,
    restrictions,
    subjects,
)
from service.consent.erasure_reasons import ERASURE_REASONS, ErasureReason
from service.consent.errors import (
    Conflict,
    FormError,
    InvalidAddressChange,
    InvalidInput,
    LimitExceeded,
    NotFound,
)
from service.consent.runtime import Runtime
from service.consent.staff_sessions import StaffSession
from service.http.console.forms import TEXT, form_uuid
from service.http.console.guard import console_guard, current_session
from service.http.console.rendering import (
    console_exception_handlers,
    console_page,
    locale_of,
    page_headers,
)
from service.http.console.times import console_timezone, when_for
from service.http.dependencies import Db
from service.http.patterns import SUBJECT_ID_PATTERN
from service.i18n import N_
from service.states import DataRequestChannel, DataRequestKind, DataRequestStatus

READ_ROLES = ("support", "admin")
# As the staff API: recording and moving rights requests, restricting and rectifying are
# support's work, export and erasure the admin's.
SUPPORT_ROLES = ("support",)
ADMIN_ROLES = ("admin",)
QUEUE_LIMIT = 100
STAFF_CHANNELS = (
    DataRequestChannel.STAFF_EMAIL,
    DataRequestChannel.STAFF_LETTER,
    DataRequestChannel.STAFF_PHONE,
)
SUBJECT = re.compile(SUBJECT_ID_PATTERN)
COUNTRY = re.compile(r"\A[A-Za-z]{2}\Z")
BIRTH_DATE = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z")
NOTE_MAX = 2000
REASON_MAX = 1000
ERASE_REQUEST_UNKNOWN = N_(
    "Choose one of this child's rights requests, or none. Nothing was erased."
)
EXPORT_NAME = re.compile(r"[^A-Za-z0-9._-]")

SubjectPath = Annotated[
    str, PathParameter(min_length=1, max_length=128, pattern=SUBJECT_ID_PATTERN)
]

KIND_LABELS = {
    DataRequestKind.ACCESS: N_("access (Art. 15)"),
    DataRequestKind.PORTABILITY: N_("portability (Art. 20)"),
    DataRequestKind.RECTIFICATION: N_("rectification (Art. 16)"),
    DataRequestKind.ERASURE: N_("erasure (Art. 17)"),
    DataRequestKind.RESTRICTION: N_("restriction (Art. 18)"),
    DataRequestKind.OBJECTION: N_("objection (Art. 21)"),
    DataRequestKind.COMPLAINT: N_("complaint"),
}
CHANNEL_LABELS = {
    DataRequestChannel.GUARDIAN_PAGE: N_("guardian's page"),
    DataRequestChannel.STAFF_EMAIL: N_("email to staff"),
    DataRequestChannel.STAFF_LETTER: N_("letter"),
    DataRequestChannel.STAFF_PHONE: N_("phone call"),
}
STATUS_LABELS = {
    DataRequestStatus.OPEN: N_("open"),
    DataRequestStatus.IN_PROGRESS: N_("in progress"),
    DataRequestStatus.DONE: N_("done"),
    DataRequestStatus.REFUSED: N_("refused"),
}
# What the page a successful action leads to says (``?done=`` names one of these).
DONE_MESSAGES = {
    "request_recorded": N_("The rights request was recorded."),
    "request_moved": N_("The rights request was moved on."),
    "restricted": N_("Processing is restricted: the check allows no purpose until it is lifted."),
    "lifted": N_("The restriction was lifted: the check answers from the consents again."),
    "address_change_started": N_(
        "A confirmation link was sent to the new address. The address changes once it is "
        "confirmed there; until then everything still goes to the current address."
    ),
    "birth_date_corrected": N_(
        "The birth date was corrected: the age of consent and the consent's end were recomputed."
    ),
}


class FormProblem(Exception):
    """A form that cannot be acted on: the message (a msgid) and the status to answer."""

    def __init__(self, message: str, status: int = 422, **params: object) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.params = params


def _field(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _text(
    form: Any, name: str, *, required: bool, message: str, maximum: int, minimum: int = 1
) -> str | None:
    """A free text field: no control characters (it is kept in the audit trail and exports)."""
    value = _field(form, name)
    if not value and not required:
        return None
    if len(value) < minimum or len(value) > maximum or not TEXT.search(value):
        raise FormProblem(message, maximum=maximum)
    return value


def _choice(form: Any, name: str, allowed: Any, message: str) -> Any:
    value = _field(form, name)
    for choice in allowed:
        if value == str(choice):
            return choice
    raise FormProblem(message)


def _confirmed(form: Any) -> bool:
    return _field(form, "confirm") == "yes"


def _subject_url(subject_id: str, done: str | None = None) -> str:
    url = f"/console/subjects/{quote(subject_id, safe='')}"
    return f"{url}?done={done}" if done else url


def _redirect(request: Request[Any, Any, Any], url: str) -> Redirect:
    return Redirect(url, status_code=303, headers=page_headers(request.app.state.runtime.settings))


def _problem(
    request: Request[Any, Any, Any],
    problem: FormProblem,
    *,
    back: str,
    headers: dict[str, str] | None = None,
) -> Template:
    return console_page(
        request,
        "rights_problem",
        http_status=problem.status,
        headers=headers,
        message=problem.message,
        params=problem.params,
        back=back,
    )


def _limit(request: Request[Any, Any, Any], error: LimitExceeded, back: str) -> Template:
    return _problem(
        request,
        FormProblem(N_("Too many attempts for now. Try again later."), status=429),
        back=back,
        headers={"Retry-After": str(max(1, math.ceil(error.retry_after_seconds)))},
    )


def _staff(request: Request[Any, Any, Any]) -> StaffSession:
    return current_session(request)


class ConsoleRightsController(Controller):
    path = "/console"
    include_in_schema = False
    guards = [console_guard]
    exception_handlers = console_exception_handlers()

    # ---- the rights-requests queue -----------------------------------------------------------

    @get("/requests", opt={"roles": READ_ROLES})
    async def queue(self, request: Request[Any, Any, Any], state: State, db: Db) -> Template:
        runtime: Runtime = state.runtime
        session = _staff(request)
        raw_status = request.query_params.get("status") or ""
        raw_kind = request.query_params.get("kind") or ""
        overdue_only = request.query_params.get("overdue") == "yes"
        status = next((s for s in DataRequestStatus if s == raw_status), None)
        kind = next((k for k in DataRequestKind if k == raw_kind), None)
        if (raw_status and status is None) or (raw_kind and kind is None):
            return _problem(
                request,
                FormProblem(N_("This filter is not one the queue offers."), status=400),
                back="/console/requests",
            )
        page = await data_requests.queue(
            db,
            runtime,
            status=status,
            kind=kind,
            overdue=True if overdue_only else None,
            limit=QUEUE_LIMIT,
        )
        await console_views.viewed(
            db,
            runtime,
            session,
            "requests",
            details={"status": status, "kind": kind, "overdue": overdue_only},
        )
        done = request.query_params.get("done")
        return console_page(
            request,
            "requests",
            requests=page.data_requests,
            more=page.next_offset is not None,
            limit=QUEUE_LIMIT,
            status=status or "",
            kind=kind or "",
            overdue_only=overdue_only,
            statuses=list(DataRequestStatus),
            kinds=list(DataRequestKind),
            status_labels=STATUS_LABELS,
            kind_labels=KIND_LABELS,
            channel_labels=CHANNEL_LABELS,
            when=when_for(request),
            can_move="support" in session.roles,
            done=DONE_MESSAGES.get(done or ""),
            subject_url=_subject_url,
        )

    @post("/requests/move", opt={"roles": SUPPORT_ROLES}, status_code=303)
    async def move(
        self, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Redirect | Template:
        """Move a rights request on: ``PATCH /v1/data-requests/{id}``'s domain function."""
        back = "/console/requests"
        form = await request.form()
        try:
            request_id = form_uuid(form.get("request_id"))
            if request_id is None:
                raise FormProblem(N_("This rights request does not exist."), status=404)
            status = _choice(
                form,
                "status",
                (DataRequestStatus.IN_PROGRESS, DataRequestStatus.DONE, DataRequestStatus.REFUSED),
                N_("Choose what the request becomes: in progress, done or refused."),
            )
            text = _text(
                form,
                "text",
                required=status == DataRequestStatus.REFUSED,
                message=N_(
                    "A refusal needs its reason (it is told to the guardian), and a text may "
                    "hold at most %(maximum)d characters without control characters."
                ),
                maximum=NOTE_MAX,
            )
            await data_requests.update_request(
                db,
                state.runtime,
                request_id,
                status=status,
                outcome=text if status != DataRequestStatus.REFUSED else None,
                refusal_reason=text if status == DataRequestStatus.REFUSED else None,
                note=None,
                staff=_staff(request).sub,
            )
        except FormProblem as problem:
            return _problem(request, problem, back=back)
        except NotFound:
            return _problem(
                request, FormProblem(N_("This rights request does not exist."), 404), back=back
            )
        except Conflict:
            return _problem(
                request,
                FormProblem(
                    N_(
                        "This rights request cannot go there: a request that is done or refused "
                        "is closed, and one in progress does not go back to open."
                    ),
                    409,
                ),
                back=back,
            )
        except InvalidInput:
            return _problem(request, FormProblem(N_("A refusal needs its reason."), 422), back=back)
        return _redirect(request, "/console/requests?done=request_moved")

    @post("/subjects/{subject_id:str}/requests", opt={"roles": SUPPORT_ROLES}, status_code=303)
    async def record(
        self, subject_id: SubjectPath, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Redirect | Template:
        """Record a rights request: ``POST /v1/data-requests``' domain function."""
        runtime: Runtime = state.runtime
        back = _subject_url(subject_id)
        form = await request.form()
        try:
            kind = _choice(
                form, "kind", list(DataRequestKind), N_("Choose the kind of the request.")
            )
            channel = _choice(
                form, "channel", STAFF_CHANNELS, N_("Choose how the request reached you.")
            )
            note = _text(
                form,
                "note",
                required=False,
                message=N_(
                    "The note may hold at most %(maximum)d characters without control characters."
                ),
                maximum=NOTE_MAX,
            )
            received_at = _received_at(_field(form, "received_at"), runtime)
            await data_requests.open_request(
                db,
                runtime,
                subject_id=subject_id,
                kind=kind,
                channel=channel,
                note=note,
                received_at=received_at,
                staff=_staff(request).sub,
            )
        except FormProblem as problem:
            return _problem(request, problem, back=back)
        except InvalidInput:
            return _problem(
                request,
                FormProblem(
                    N_(
                        "The date received cannot lie in the future nor more than %(days)d days "
                        "in the past; check the date."
                    ),
                    days=data_requests.RECEIVED_AT_MAX_AGE.days,
                ),
                back=back,
            )
        return _redirect(request, _subject_url(subject_id, "request_recorded"))

    # ---- restriction ----------------------------------------------------------------------

    @post("/subjects/{subject_id:str}/restrict", opt={"roles": SUPPORT_ROLES}, status_code=303)
    async def restrict(
        self, subject_id: SubjectPath, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Redirect | Template:
        back = _subject_url(subject_id)
        form = await request.form()
        try:
            reason = _text(
                form,
                "reason",
                required=True,
                minimum=3,
                maximum=REASON_MAX,
                message=N_("Say why the processing is restricted, in 3 to %(maximum)d characters."),
            )
            assert reason is not None
            await restrictions.restrict(
                db, state.runtime, subject_id, reason=reason, staff=_staff(request).sub
            )
        except FormProblem as problem:
            return _problem(request, problem, back=back)
        except NotFound:
            return _problem(
                request,
                FormProblem(N_("Nothing is stored about this child, so nothing to restrict."), 404),
                back=back,
            )
        except Conflict:
            return _problem(
                request,
                FormProblem(
                    N_("This child's processing is restricted already; the first reason stays."),
                    409,
                ),
                back=back,
            )
        return _redirect(request, _subject_url(subject_id, "restricted"))

    @post("/subjects/{subject_id:str}/lift", opt={"roles": SUPPORT_ROLES}, status_code=200)
    async def lift(
        self, subject_id: SubjectPath, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Redirect | Template:
        runtime: Runtime = state.runtime
        session = _staff(request)
        form = await request.form()
        if not _confirmed(form):
            await console_views.viewed(db, runtime, session, "confirm_lift", subject_id=subject_id)
            return _confirm(
                request,
                subject_id,
                action="lift",
                title=N_("Lift the restriction?"),
                facts=[
                    N_(
                        "The check answers from the child's consents again, and the main app "
                        "is told that the restriction was lifted."
                    )
                ],
                fields={},
                button=N_("Lift the restriction"),
            )
        try:
            await restrictions.lift(db, runtime, subject_id, staff=session.sub)
        except NotFound:
            return _problem(
                request,
                FormProblem(N_("This child's processing is not restricted."), 404),
                back=_subject_url(subject_id),
            )
        return _redirect(request, _subject_url(subject_id, "lifted"))

    # ---- rectification ---------------------------------------------------------------------

    @post(
        "/subjects/{subject_id:str}/guardian-email", opt={"roles": SUPPORT_ROLES}, status_code=200
    )
    async def guardian_email(
        self, subject_id: SubjectPath, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Redirect | Template:
        """``POST /v1/consents/{id}/guardian-email``' domain function, after a confirmation."""
        runtime: Runtime = state.runtime
        session = _staff(request)
        back = _subject_url(subject_id)
        form = await request.form()
        try:
            consent_id = form_uuid(form.get("consent_id"))
            if consent_id is None:
                raise FormProblem(N_("Choose the consent whose address changes."))
            email = _field(form, "email")
            if not 3 <= len(email) <= 254 or "@" not in email:
                raise FormProblem(N_("Enter a whole email address, such as parent@example.com."))
            channel = _choice(
                form, "channel", STAFF_CHANNELS, N_("Choose how the request reached you.")
            )
            await _consent_of(db, subject_id, consent_id)
            if not _confirmed(form):
                await console_views.viewed(
                    db, runtime, session, "confirm_guardian_email", subject_id=subject_id
                )
                return _confirm(
                    request,
                    subject_id,
                    action="guardian-email",
                    title=N_("Change the guardian's address?"),
                    facts=[
                        N_(
                            "A confirmation link is sent to the new address. Nothing changes "
                            "until it is confirmed there; then the previous address is told."
                        )
                    ],
                    shown=[(N_("New address"), email)],
                    fields={"consent_id": str(consent_id), "email": email, "channel": channel},
                    button=N_("Send the confirmation link"),
                )
            await rectification.start_address_change(
                db,
                runtime,
                consent_id,
                new_email=email,
                actor=session.actor,
                channel=channel,
                handler=session.sub,
            )
        except FormProblem as problem:
            return _problem(request, problem, back=back)
        except InvalidAddressChange as invalid:
            message = (
                N_("This is already the guardian's address.")
                if FormError.EMAIL_UNCHANGED in invalid.errors
                else N_("This is not an address the service sends to.")
            )
            return _problem(request, FormProblem(message), back=back)
        except NotFound:
            return _problem(
                request,
                FormProblem(N_("Choose the consent whose address changes."), 404),
                back=back,
            )
        except Conflict:
            return _problem(
                request,
                FormProblem(N_("Only a live consent's guardian address can change."), 409),
                back=back,
            )
        except LimitExceeded as limit:
            return _limit(request, limit, back)
        return _redirect(request, _subject_url(subject_id, "address_change_started"))

    @post("/subjects/{subject_id:str}/birth-date", opt={"roles": SUPPORT_ROLES}, status_code=200)
    async def birth_date(
        self, subject_id: SubjectPath, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Redirect | Template:
        """``POST /v1/subjects/{id}/birth-date``' domain function, after a confirmation."""
        runtime: Runtime = state.runtime
        session = _staff(request)
        back = _subject_url(subject_id)
        form = await request.form()
        try:
            birth_date = _field(form, "birth_date")
            if not BIRTH_DATE.search(birth_date):
                raise FormProblem(N_("Enter the birth date as year-month-day, such as 2014-05-30."))
            country = _field(form, "country").upper() or None
            if country is not None and not COUNTRY.search(country):
                raise FormProblem(
                    N_("Enter the country as its two-letter code, such as SI, or leave it empty.")
                )
            channel = _choice(
                form, "channel", STAFF_CHANNELS, N_("Choose how the request reached you.")
            )
            if not _confirmed(form):
                await console_views.viewed(
                    db, runtime, session, "confirm_birth_date", subject_id=subject_id
                )
                return _confirm(
                    request,
                    subject_id,
                    action="birth-date",
                    title=N_("Correct the birth date?"),
                    facts=[
                        N_(
                            "The age of consent and the end of the live consent and of a pending "
                            "request are recomputed. A child who needs no guardian's consent any "
                            "more ends the consent and closes the pending request."
                        )
                    ],
                    shown=[(N_("Birth date"), birth_date), (N_("Country"), country or "-")],
                    fields={
                        "birth_date": birth_date,
                        "country": country or "",
                        "channel": channel,
                    },
                    button=N_("Correct the birth date"),
                )
            await rectification.correct_birth_date(
                db,
                runtime,
                subject_id,
                birth_date=birth_date,
                country=country,
                data_request_id=None,
                channel=channel,
                staff=session.sub,
            )
        except FormProblem as problem:
            return _problem(request, problem, back=back)
        except NotFound:
            return _problem(
                request,
                FormProblem(
                    N_(
                        "This child has no live consent and no pending request whose birth date "
                        "could be corrected."
                    ),
                    404,
                ),
                back=back,
            )
        except InvalidInput:
            return _problem(
                request,
                FormProblem(
                    N_("This birth date or country cannot be used: check both and try again.")
                ),
                back=back,
            )
        except Conflict:
            return _problem(
                request,
                FormProblem(
                    N_(
                        "Under the rules of that country the consent cannot simply be moved; the "
                        "app must open a new consent request."
                    ),
                    409,
                ),
                back=back,
            )
        return _redirect(request, _subject_url(subject_id, "birth_date_corrected"))

    # ---- export and erasure (admin) ---------------------------------------------------------

    @post("/subjects/{subject_id:str}/export", opt={"roles": ADMIN_ROLES}, status_code=200)
    async def export(
        self, subject_id: SubjectPath, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Response[bytes]:
        """``GET /v1/subjects/{id}/export``' domain function, as a file to save."""
        runtime: Runtime = state.runtime
        record = await subjects.export(
            db, runtime, subject_id, reader=_staff(request).actor, locale=locale_of(request)
        )
        name = EXPORT_NAME.sub("_", subject_id)
        return Response(
            content=msgspec.json.encode(record),
            media_type="application/json",
            headers={
                **page_headers(runtime.settings),
                "Content-Disposition": f'attachment; filename="subject-{name}-export.json"',
            },
        )

    async def _erase_page(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        runtime: Runtime,
        subject_id: str,
        *,
        http_status: int = 200,
        reason: str = "",
        data_request: str = "",
        error: str | None = None,
    ) -> Template:
        await console_views.viewed(db, runtime, _staff(request), "erase", subject_id=subject_id)
        return console_page(
            request,
            "erase",
            http_status=http_status,
            subject_id=subject_id,
            reasons=ERASURE_REASONS,
            reason=reason,
            tracked=await data_requests.of_subject(db, runtime, subject_id),
            data_request=data_request,
            kind_labels=KIND_LABELS,
            status_labels=STATUS_LABELS,
            when=when_for(request),
            error=error,
        )

    @get("/subjects/{subject_id:str}/erase", opt={"roles": ADMIN_ROLES})
    async def erase_form(
        self, subject_id: SubjectPath, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        return await self._erase_page(request, db, state.runtime, subject_id)

    @post("/subjects/{subject_id:str}/erase", opt={"roles": ADMIN_ROLES}, status_code=200)
    async def erase(
        self, subject_id: SubjectPath, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        """``DELETE /v1/subjects/{id}``' domain function, once the subject id is typed again.

        The tombstone keeps a reason category and the tracked rights request, never free text.
        """
        runtime: Runtime = state.runtime
        form = await request.form()
        raw_reason = _field(form, "reason")
        raw_request = _field(form, "data_request_id")
        reason = next((r for r in ErasureReason if r == raw_reason), None)
        data_request_id = form_uuid(raw_request)
        error = None
        if reason is None:
            error = N_("Choose why the child's data is erased.")
        elif raw_request and data_request_id is None:
            error = ERASE_REQUEST_UNKNOWN
        elif _field(form, "typed_subject_id") != subject_id:
            error = N_("The subject id you typed does not match this child's. Nothing was erased.")
        if error is None:
            try:
                receipt = await subjects.erase(
                    db,
                    runtime,
                    subject_id,
                    actor=_staff(request).actor,
                    reason=reason,
                    data_request_id=data_request_id,
                )
            except InvalidInput:
                error = ERASE_REQUEST_UNKNOWN
            else:
                return console_page(request, "erased", receipt=receipt)
        return await self._erase_page(
            request,
            db,
            runtime,
            subject_id,
            http_status=422,
            reason=reason or "",
            data_request=str(data_request_id or ""),
            error=error,
        )


def _received_at(raw: str, runtime: Runtime) -> datetime | None:
    """The form's date and time, in the operator's time zone; now when left empty."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise FormProblem(
            N_("Enter the date received as year-month-day and hour:minute, or leave it empty.")
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(console_timezone(runtime.settings)))
    return moment


async def _consent_of(db: Db, subject_id: str, consent_id: uuid.UUID) -> None:
    """The consent must be this child's: a form for one child never changes another's."""
    if not await console_rights.consent_of_subject(db, subject_id, consent_id):
        raise FormProblem(N_("Choose the consent whose address changes."), status=404)


def _confirm(
    request: Request[Any, Any, Any],
    subject_id: str,
    *,
    action: str,
    title: str,
    facts: list[str],
    fields: dict[str, str],
    button: str,
    shown: list[tuple[str, str]] | None = None,
) -> Template:
    """The confirmation step: what will happen, and the same form again with ``confirm``."""
    return console_page(
        request,
        "rights_confirm",
        subject_id=subject_id,
        action=f"/console/subjects/{quote(subject_id, safe='')}/{action}",
        back=_subject_url(subject_id),
        title=title,
        facts=facts,
        shown=shown or [],
        fields=fields,
        button=button,
    )
