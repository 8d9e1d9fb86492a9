"""The check endpoint's fast lane: an ASGI middleware that answers a well-formed, authorised
``GET /v1/consents/check`` itself, from the same authenticator, cache and answer function as
the route, without Litestar's routing, guard (which copies the route handler on each call),
dependency resolution and response building, a large share of a cached check's time.

It answers only what it is sure of: exactly the two parameters, each valid as sent (nothing
percent-encoded that the pattern does not allow, so no decoding rule can differ from the
framework's), one bearer credential of an active key with the route's scopes, a known purpose,
and a row read without error. Everything else (a missing or wrong key, a bad parameter, a
database failure, anything unusual) goes on to the route, which authenticates again and
answers the problem (401, 403, 422, 503) exactly as without this lane: failing closed stays
the route's business. The middlewares outside it (metrics, security headers) see its answer
like any other; it names the route template for the metrics as routing would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send

from service.consent.check import answer_check
from service.http.api_key_auth import ApiKeyAuthenticator
from service.http.patterns import PURPOSE_ID_PATTERN, SUBJECT_ID_PATTERN

CHECK_PATH = "/v1/consents/check"
CHECK_SCOPES = ("consent:check",)
# The route's QueryParameter limits, tested the way the framework tests them (re.search).
SUBJECT_ID_MAX_LENGTH = 128
PURPOSE_MAX_LENGTH = 64
_subject_id = re.compile(SUBJECT_ID_PATTERN).search
_purpose = re.compile(PURPOSE_ID_PATTERN).search
_encoder = msgspec.json.Encoder()
_JSON_HEADERS = (b"content-type", b"application/json")


def _parameters(query_string: bytes) -> tuple[str, str] | None:
    """``(subject_id, purpose)`` when the query is exactly those two, each valid, else None."""
    try:
        query = query_string.decode("ascii")
    except UnicodeDecodeError:
        return None
    found: dict[str, str] = {}
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        if not equals or name not in ("subject_id", "purpose") or name in found:
            return None
        found[name] = unquote(value, errors="strict")
    if len(found) != 2:
        return None
    subject_id, purpose = found["subject_id"], found["purpose"]
    if not (0 < len(subject_id) <= SUBJECT_ID_MAX_LENGTH and _subject_id(subject_id)):
        return None
    if not (0 < len(purpose) <= PURPOSE_MAX_LENGTH and _purpose(purpose)):
        return None
    return subject_id, purpose


def _credential(scope: Scope) -> str | None:
    """The bearer credential of the request's one Authorization header, as the guard reads it."""
    found = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if found is not None:
                return None
            found = value
    if found is None:
        return None
    scheme, _, credential = found.decode("latin-1").partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        return None
    return credential


def check_lane_factory(state_of: Callable[[], Any]) -> Callable[[ASGIApp], ASGIApp]:
    """``state_of``: the application's state, holding the lifespan's authenticator and cache."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def lane(scope: Scope, receive: Receive, send: Send) -> None:
            if (
                scope["type"] != "http"  # type: ignore[comparison-overlap]
                or scope["path"] != CHECK_PATH
                or scope.get("method") != "GET"
            ):
                await app(scope, receive, send)
                return
            body = await _answer(scope, state_of())
            if body is None:
                await app(scope, receive, send)
                return
            scope["path_template"] = CHECK_PATH
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body, "more_body": False})

        return lane

    return middleware


async def _answer(scope: Scope, state: Any) -> bytes | None:
    authenticator: ApiKeyAuthenticator | None = getattr(state, "authenticator", None)
    check_rows = getattr(state, "check_rows", None)
    runtime = getattr(state, "runtime", None)
    if authenticator is None or check_rows is None or runtime is None:
        return None
    try:
        parameters = _parameters(scope["query_string"])
    except UnicodeDecodeError:
        return None
    credential = _credential(scope)
    if parameters is None or credential is None:
        return None
    subject_id, purpose = parameters
    if runtime.catalogue.get(purpose) is None:
        return None
    try:
        key = await authenticator.authenticate(credential)
        if key is None or any(scope_ not in key.scopes for scope_ in CHECK_SCOPES):
            return None
        row = await check_rows.read(subject_id)
    except Exception:  # the route meets the same failure and answers it
        return None
    answer = answer_check(row, subject_id=subject_id, purpose=purpose, now=runtime.clock.now())
    return _encoder.encode(answer)
