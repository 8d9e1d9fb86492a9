"""Console pages for administrators only: dead outbox messages sent again, API keys, and the
audit chain. A support session gets the 403 page on every one of them.

Ids travel in the form body (or the query of a confirmation page), never as path segments,
and every action is the same domain function the command line uses, with actor
``staff:<sub>``.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.response import Template

from service.consent import administration
from service.consent.administration import InvalidKey, RetryOutcome
from service.consent.runtime import Runtime
from service.http.console.forms import form_uuid
from service.http.console.guard import console_guard, current_session
from service.http.console.labels import TOPIC_LABELS
from service.http.console.rendering import console_exception_handlers, console_page, locale_of
from service.http.console.times import when_for
from service.http.dependencies import Db
from service.i18n import N_, translator

ADMIN = ("admin",)

RETRY_QUEUED = N_("The message is queued and will be sent again in a moment.")
RETRY_SCRUBBED = N_(
    "This message cannot be sent again: what it said was deleted (retention or an erasure)."
)
RETRY_NOT_DEAD = N_("This message is no longer waiting for a retry; nothing was changed.")
RETRY_UNKNOWN = N_("There is no such message; nothing was changed.")
RETRY_INVALID = N_("The form did not name a message; nothing was changed.")
KEY_NAME_INVALID = N_(
    "Enter a name for the key: at most 100 characters, no line breaks or control characters."
)
KEY_SCOPES_INVALID = N_("Choose at least one scope.")
KEY_UNKNOWN = N_("There is no such API key; nothing was changed.")
KEY_ALREADY_REVOKED = N_("This API key was already revoked; nothing was changed.")
KEY_REVOKED = N_("The API key “%(name)s” is revoked. Requests with it are refused from now on.")
KEY_NOT_CONFIRMED = N_("Tick the box to confirm the revocation; nothing was changed.")

RETRY_ANSWERS = {
    RetryOutcome.QUEUED: (200, RETRY_QUEUED),
    RetryOutcome.SCRUBBED: (409, RETRY_SCRUBBED),
    RetryOutcome.NOT_DEAD: (409, RETRY_NOT_DEAD),
    RetryOutcome.UNKNOWN: (404, RETRY_UNKNOWN),
}


def _text(request: Request[Any, Any, Any], message: str, **values: str) -> str:
    return translator(locale_of(request)).gettext(message, **values)


class ConsoleAdminController(Controller):
    path = "/console/admin"
    include_in_schema = False
    guards = [console_guard]
    exception_handlers = console_exception_handlers()

    async def _outbox_page(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        runtime: Runtime,
        *,
        http_status: int = 200,
        notice: str | None = None,
        error: str | None = None,
    ) -> Template:
        messages = await administration.view_dead_messages(db, runtime, current_session(request))
        return console_page(
            request,
            "admin_outbox",
            http_status=http_status,
            admin_page="outbox",
            messages=messages,
            topic_labels=TOPIC_LABELS,
            when=when_for(request),
            notice=notice,
            error=error,
        )

    @get("/outbox", opt={"roles": ADMIN})
    async def outbox(self, request: Request[Any, Any, Any], state: State, db: Db) -> Template:
        return await self._outbox_page(request, db, state.runtime)

    @post("/outbox/retry", opt={"roles": ADMIN}, status_code=200)
    async def retry(self, request: Request[Any, Any, Any], state: State, db: Db) -> Template:
        runtime: Runtime = state.runtime
        form = await request.form()
        message_id = form_uuid(form.get("message_id"))
        if message_id is None:
            return await self._outbox_page(
                request, db, runtime, http_status=400, error=_text(request, RETRY_INVALID)
            )
        outcome = await administration.retry_dead_message(
            db, runtime, current_session(request), message_id
        )
        status, message = RETRY_ANSWERS[outcome]
        text = _text(request, message)
        return await self._outbox_page(
            request,
            db,
            runtime,
            http_status=status,
            notice=text if status == 200 else None,
            error=None if status == 200 else text,
        )

    async def _keys_page(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        runtime: Runtime,
        *,
        http_status: int = 200,
        notice: str | None = None,
        error: str | None = None,
        form: dict[str, Any] | None = None,
    ) -> Template:
        keys = await administration.view_keys(db, runtime, current_session(request))
        return console_page(
            request,
            "admin_keys",
            http_status=http_status,
            admin_page="keys",
            keys=keys,
            scopes=administration.SCOPES,
            when=when_for(request),
            notice=notice,
            error=error,
            form=form or {"name": "", "scopes": [], "field": None},
        )

    @get("/keys", opt={"roles": ADMIN})
    async def keys(self, request: Request[Any, Any, Any], state: State, db: Db) -> Template:
        return await self._keys_page(request, db, state.runtime)

    @post("/keys", opt={"roles": ADMIN}, status_code=200)
    async def create_key(self, request: Request[Any, Any, Any], state: State, db: Db) -> Template:
        runtime: Runtime = state.runtime
        form = await request.form()
        name = str(form.get("name", ""))
        scopes = [str(scope) for scope in form.getall("scope", [])]
        try:
            key, record = await administration.create_key(
                db, runtime, current_session(request), name=name, scopes=scopes
            )
        except InvalidKey as exc:
            message = KEY_NAME_INVALID if exc.field == "name" else KEY_SCOPES_INVALID
            return await self._keys_page(
                request,
                db,
                runtime,
                http_status=422,
                error=_text(request, message),
                form={"name": name[:200], "scopes": scopes, "field": exc.field},
            )
        # The only time the key is shown; the page is no-store like every console page.
        return console_page(
            request,
            "admin_key_created",
            admin_page="keys",
            key=key,
            record=record,
            when=when_for(request),
        )

    @get("/keys/revoke", opt={"roles": ADMIN})
    async def confirm_revoke(
        self, request: Request[Any, Any, Any], state: State, db: Db
    ) -> Template:
        """The confirmation step: shows the key to be revoked and changes nothing."""
        runtime: Runtime = state.runtime
        key_id = form_uuid(request.query_params.get("key"))
        record = await administration.find_key(db, key_id) if key_id else None
        if record is None or record.revoked_at is not None:
            message = KEY_UNKNOWN if record is None else KEY_ALREADY_REVOKED
            status = 404 if record is None else 409
            return await self._keys_page(
                request, db, runtime, http_status=status, error=_text(request, message)
            )
        await administration.view_page(db, runtime, current_session(request), "admin_key_revoke")
        return console_page(
            request,
            "admin_key_revoke",
            admin_page="keys",
            record=record,
            when=when_for(request),
            error=None,
        )

    @post("/keys/revoke", opt={"roles": ADMIN}, status_code=200)
    async def revoke_key(self, request: Request[Any, Any, Any], state: State, db: Db) -> Template:
        runtime: Runtime = state.runtime
        session = current_session(request)
        form = await request.form()
        key_id = form_uuid(form.get("key_id"))
        record = await administration.find_key(db, key_id) if key_id else None
        if record is None:
            return await self._keys_page(
                request, db, runtime, http_status=404, error=_text(request, KEY_UNKNOWN)
            )
        if form.get("confirm") != "yes":
            await administration.view_page(db, runtime, session, "admin_key_revoke")
            return console_page(
                request,
                "admin_key_revoke",
                http_status=422,
                admin_page="keys",
                record=record,
                when=when_for(request),
                error=_text(request, KEY_NOT_CONFIRMED),
            )
        if not await administration.revoke_key(db, runtime, session, record.id):
            return await self._keys_page(
                request, db, runtime, http_status=409, error=_text(request, KEY_ALREADY_REVOKED)
            )
        return await self._keys_page(
            request, db, runtime, notice=_text(request, KEY_REVOKED, name=record.name)
        )

    @get("/audit", opt={"roles": ADMIN})
    async def audit(self, request: Request[Any, Any, Any], state: State, db: Db) -> Template:
        head = await administration.view_chain(db, state.runtime, current_session(request))
        return console_page(request, "admin_audit", admin_page="audit", head=head, result=None)

    @post("/audit/verify", opt={"roles": ADMIN}, status_code=200)
    async def verify(self, request: Request[Any, Any, Any], state: State, db: Db) -> Template:
        result = await administration.verify(db, state.runtime, current_session(request))
        return console_page(
            request,
            "admin_audit",
            admin_page="audit",
            head=result.head,
            result=result,
        )
