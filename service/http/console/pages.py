"""Console pages for support and admin: home and search, and a subject's case.

Each page is an audit event naming the staff member (``service.consent.console_views``).
Actions on a case (revoke, resend, unlock, cancel, restrict, rectify, export, erase) become
routes here with their role in ``opt["roles"]`` and a CSRF-protected form on the case page.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import PathParameter
from litestar.response import Template

from service.consent import console_views
from service.consent.child_hints import child_hints
from service.consent.runtime import Runtime
from service.http.console.actions import case_actions_context
from service.http.console.guard import console_guard, current_session
from service.http.console.labels import TOPIC_LABELS
from service.http.console.rendering import console_exception_handlers, console_page, locale_of
from service.http.console.rights import DONE_MESSAGES
from service.http.console.timeline import timeline
from service.http.console.times import when_for
from service.http.dependencies import Db
from service.http.patterns import EMAIL_LOOKUP_PATTERN, SUBJECT_ID_PATTERN
from service.i18n import N_, translator

READ_ROLES = ("support", "admin")
SEARCH_BY = ("subject", "guardian")
SUBJECT_PATTERN = re.compile(SUBJECT_ID_PATTERN)
EMAIL_PATTERN = re.compile(EMAIL_LOOKUP_PATTERN)

INVALID_SUBJECT = N_("Enter a subject id: letters, digits and . _ : @ - only, at most 128.")
INVALID_EMAIL = N_("Enter a whole email address, such as parent@example.com.")

SubjectPath = Annotated[
    str, PathParameter(min_length=1, max_length=128, pattern=SUBJECT_ID_PATTERN)
]


class ConsoleController(Controller):
    path = "/console"
    include_in_schema = False
    guards = [console_guard]
    exception_handlers = console_exception_handlers()

    @get("/", opt={"roles": READ_ROLES})
    async def home(self, request: Request[Any, Any, Any], state: State, db: Db) -> Template:
        await console_views.view_page(db, state.runtime, current_session(request), "home")
        return console_page(request, "home", by="subject", query="")

    @post("/search", opt={"roles": READ_ROLES}, status_code=200)
    async def search(self, request: Request[Any, Any, Any], state: State, db: Db) -> Template:
        """The query travels in the form body, so no address ends up in a URL or a log."""
        runtime: Runtime = state.runtime
        session = current_session(request)
        form = await request.form()
        by = str(form.get("by", ""))
        query = str(form.get("query", "")).strip()
        locale = locale_of(request)
        if by not in SEARCH_BY:
            by = "subject"
        if by == "subject" and not (len(query) <= 128 and SUBJECT_PATTERN.search(query)):
            error = translator(locale).gettext(INVALID_SUBJECT)
        elif by == "guardian" and not (len(query) <= 254 and EMAIL_PATTERN.search(query)):
            error = translator(locale).gettext(INVALID_EMAIL)
        else:
            error = None
        if error is not None:
            await console_views.view_page(db, runtime, session, "search")
            return console_page(request, "home", http_status=422, by=by, query=query, error=error)
        results: list[dict[str, Any]]
        when = when_for(request)
        if by == "subject":
            found = await console_views.search_by_subject(db, runtime, session, query)
            results = [{"subject_id": subject_id} for subject_id in found]
            shown_query = query
        else:
            # Shown masked, as the staff API answers it: the page may stay on a screen.
            shown_query, matches = await console_views.search_by_guardian(
                db, runtime, session, query
            )
            results = [
                {
                    "subject_id": match.subject_id,
                    "requests": match.requests,
                    "latest": when(match.latest_request_at),
                    "status": match.latest_status,
                    "child_hint": match.child_hint,
                }
                for match in matches
            ]
        return console_page(request, "home", by=by, query="", searched=shown_query, results=results)

    @get("/subjects/{subject_id:str}", opt={"roles": READ_ROLES})
    async def subject(
        self, subject_id: SubjectPath, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        runtime: Runtime = state.runtime
        case = await console_views.subject_case(db, runtime, current_session(request), subject_id)
        locale = locale_of(request)
        catalogue = {p.id: p.localized_title(locale) for p in runtime.catalogue.purposes}

        def purpose_title(pid: str) -> str:
            return catalogue.get(pid, pid)

        return console_page(
            request,
            "subject",
            http_status=200 if case.known else 404,
            case=case,
            when=when_for(request),
            purpose_title=purpose_title,
            timeline=timeline(case.events, translator(locale), purpose_title),
            topic_labels=TOPIC_LABELS,
            child_hints=await child_hints(db, runtime, subject_id) if case.known else {},
            actions=await case_actions_context(db, runtime, case.overview, request),
            rights_done=DONE_MESSAGES,
        )
