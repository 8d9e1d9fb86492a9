"""JSON endpoints take JSON only: any other ``Content-Type`` (a form, plain text, none at all)
is a 415 before the body is read, so such a request changes nothing.

Which endpoints those are is read from the handlers' signatures (a JSON ``data`` parameter),
so a new endpoint is covered without being listed anywhere.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from service.http.problems import ProblemError, problem_responses

UNSUPPORTED_MEDIA_TYPE = 415


def takes_json_body(handler: HTTPRouteHandler) -> bool:
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return False
    media_type = getattr(data.kwarg_definition, "media_type", RequestEncodingType.JSON)
    return bool(media_type == RequestEncodingType.JSON)


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or a structured ``application/*+json`` type, parameters aside."""
    kind, _, subtype = content_type.strip().lower().partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


async def require_json_media_type(request: Request[Any, Any, Any]) -> None:
    """Runs before the handler's arguments are read (after authentication)."""
    if not takes_json_body(request.route_handler):
        return
    media_type, _ = request.content_type
    if not is_json_media_type(media_type):
        sent = f"Content-Type {media_type}" if media_type else "no Content-Type"
        raise ProblemError(
            UNSUPPORTED_MEDIA_TYPE,
            f"This endpoint takes a JSON body sent as Content-Type application/json; "
            f"the request had {sent}.",
        )


def json_body_handlers(app: Litestar) -> list[HTTPRouteHandler]:
    return [
        handler
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if takes_json_body(handler)
    ]


def document_unsupported_media_type(app: Litestar) -> None:
    """Add the 415 problem to the OpenAPI responses of every JSON endpoint."""
    for handler in json_body_handlers(app):
        handler.responses = {
            **(handler.responses or {}),
            **problem_responses(UNSUPPORTED_MEDIA_TYPE),
        }
