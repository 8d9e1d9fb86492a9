"""`/dev/mail`: the development mailbox, grouped per consent request, with clickable links, the
text part, and the HTML part as the guardian's mail program shows it. Registered only by `dev`.

The HTML part is served by its own route (`/dev/mail/{number}/html`) with a strict policy of
its own (no scripts, nothing fetched) and shown in a sandboxed iframe without scripts, so a
message is looked at, never run.
"""

from __future__ import annotations

import uuid
from html import escape

from litestar import Response, get
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from service.db import outbox
from service.db.errors import DATABASE_ERRORS
from service.dev.mailcatcher import CapturedMessage, Mailbox
from service.http.dependencies import Db

# the message's own inline styles and data: images only; no scripts, nothing from any host
MESSAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)
_PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Development mailbox</title><link rel="stylesheet" href="/static/guardian.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"></head>
<body><main><h1>Development mailbox</h1>
<p>Messages the service sent while running with <code>consent-service dev</code>, grouped by
consent request, newest first. Reload to see new ones.
Webhooks: <a href="/dev/webhooks">/dev/webhooks</a>.</p>
{body}</main></body></html>"""


def _message_id(message: CapturedMessage) -> uuid.UUID | None:
    """The outbox item a message was sent for (its Message-ID is ``<item id@domain>``)."""
    local = message.message_id.strip("<>").partition("@")[0]
    try:
        return uuid.UUID(local)
    except ValueError:
        return None


def _group_of(message: CapturedMessage, origins: dict[uuid.UUID, outbox.EmailOrigin]) -> str:
    item = _message_id(message)
    origin = origins.get(item) if item else None
    if origin is not None and origin.request_id is not None:
        subject = f" (subject {origin.subject_id})" if origin.subject_id else ""
        return f"Consent request {origin.request_id}{subject}"
    return f"To {', '.join(message.recipients)}: {message.subject}"


def _render_message(message: CapturedMessage) -> str:
    links = "".join(
        f'<li><a href="{escape(link)}">{escape(link)}</a></li>' for link in message.links
    )
    html_part = (
        f'<iframe sandbox="" src="/dev/mail/{message.number}/html" referrerpolicy="no-referrer" '
        f'title="HTML part of message {message.number}" style="width:100%;height:28rem;'
        'border:1px solid #ccc"></iframe>'
        if message.html
        else "<p>No HTML part.</p>"
    )
    return (
        f'<article id="message-{message.number}">'
        f"<h3>{escape(message.subject)}</h3>"
        f"<p>To {escape(', '.join(message.recipients))} at "
        f"{message.received_at:%Y-%m-%d %H:%M:%S} UTC</p>"
        f"<ul>{links}</ul>"
        f"<details open><summary>HTML part</summary>{html_part}</details>"
        f"<details><summary>Text part</summary><pre>{escape(message.text)}</pre></details>"
        "</article>"
    )


def render_mailbox(
    mailbox: Mailbox, origins: dict[uuid.UUID, outbox.EmailOrigin] | None = None
) -> str:
    groups: dict[str, list[CapturedMessage]] = {}
    for message in reversed(mailbox.messages):  # newest first, and so are the groups
        groups.setdefault(_group_of(message, origins or {}), []).append(message)
    body = "".join(
        f'<section class="mail-group"><h2>{escape(title)}</h2>'
        + "".join(_render_message(message) for message in messages)
        + "</section>"
        for title, messages in groups.items()
    )
    return _PAGE.format(body=body or "<p>No messages yet.</p>")


def mailbox_routes(mailbox: Mailbox) -> list[HTTPRouteHandler]:
    """``/dev/mail`` and each message's HTML part for this mailbox; only ``dev`` registers them."""

    @get("/dev/mail", include_in_schema=False)
    async def dev_mail(db: Db) -> Response[str]:
        ids = [item for item in map(_message_id, mailbox.messages) if item is not None]
        try:
            origins = await outbox.email_origins(db, ids)
        except DATABASE_ERRORS:
            origins = {}  # grouped by recipient and subject while the database is away
        return Response(
            render_mailbox(mailbox, origins), media_type="text/html", headers=_PAGE_HEADERS
        )

    @get("/dev/mail/{number:int}/html", include_in_schema=False)
    async def dev_mail_html(number: FromPath[int]) -> Response[str]:
        message = mailbox.numbered(number)
        if message is None or not message.html:
            raise NotFoundException("No such message, or it has no HTML part.")
        return Response(
            message.html,
            media_type="text/html",
            headers={**_PAGE_HEADERS, "Content-Security-Policy": MESSAGE_CSP},
        )

    return [dev_mail, dev_mail_html]
