"""`/dev/mail`: the development mailbox with clickable links. Registered only by `dev`."""

from __future__ import annotations

from html import escape

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from service.dev.mailcatcher import Mailbox

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Development mailbox</title><link rel="stylesheet" href="/static/guardian.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"></head>
<body><main><h1>Development mailbox</h1>
<p>Messages the service sent while running with <code>consent-service dev</code>, newest first.
Reload to see new ones.</p>{body}</main></body></html>"""


def render_mailbox(mailbox: Mailbox) -> str:
    items = []
    for message in reversed(mailbox.messages):
        links = "".join(
            f'<li><a href="{escape(link)}">{escape(link)}</a></li>' for link in message.links
        )
        items.append(
            "<article>"
            f"<h2>{escape(message.subject)}</h2>"
            f"<p>To {escape(', '.join(message.recipients))} at "
            f"{message.received_at:%Y-%m-%d %H:%M:%S} UTC</p>"
            f"<ul>{links}</ul>"
            f"<details><summary>Text</summary><pre>{escape(message.text)}</pre></details>"
            "</article>"
        )
    body = "".join(items) or "<p>No messages yet.</p>"
    return _PAGE.format(body=body)


def mailbox_route(mailbox: Mailbox) -> HTTPRouteHandler:
    """``/dev/mail`` for this mailbox; only ``dev`` registers it."""

    @get("/dev/mail", include_in_schema=False)
    async def dev_mail() -> Response[str]:
        return Response(
            render_mailbox(mailbox),
            media_type="text/html",
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )

    return dev_mail
