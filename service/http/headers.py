"""Headers every response carries, set in one place (a ``before_send`` hook, so that errors
answered before routing, static files and the docs get them too):

- ``X-Content-Type-Options: nosniff``: a browser never guesses another type for a body;
- ``Cache-Control: no-store`` unless the response chose its own caching (the JWKS): answers hold
  consent states, tokens and, in the admin export, decrypted guardian addresses, none of which
  a shared or browser cache should keep;
- ``Strict-Transport-Security`` when ``CONSENT_PUBLIC_URL`` is https, so browsers that reached
  the service once never fall back to plain HTTP for it;
- the API docs' Content-Security-Policy under ``/schema`` (only this origin), since Litestar
  makes the docs page's handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from service.http.api_docs import DOCS_CSP, DOCS_PATH

HSTS = "max-age=31536000"  # one year

BeforeSend = Callable[[Message, Scope], Awaitable[None]]


def security_headers(public_url: str) -> BeforeSend:
    hsts = urlsplit(public_url).scheme == "https"

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Cache-Control", "no-store")
        if hsts:
            headers.setdefault("Strict-Transport-Security", HSTS)
        path = scope.get("path", "")
        if path == DOCS_PATH or path.startswith(DOCS_PATH + "/"):
            headers.setdefault("Content-Security-Policy", DOCS_CSP)

    return add_headers
