"""Public privacy documents: the written retention policy, generated from the enforced settings."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import FromQuery
from litestar.response import Template

from service.consent.retention import policy_of
from service.consent.retention_document import policy_document, render_markdown
from service.consent.runtime import Runtime
from service.http.guardian_pages import SECURITY_HEADERS, page
from service.i18n import negotiate_locale

MARKDOWN = "text/markdown"
HTML = "text/html"
VARIES_WITH = {"Vary": "Accept, Accept-Language"}


@get("/privacy/retention", include_in_schema=False, sync_to_thread=False)
def retention_policy_page(
    request: Request[Any, Any, State], state: State, locale: FromQuery[str | None] = None
) -> Template | Response[str]:
    """HTML in the guardian pages' style; Markdown when the client asks for it (``Accept``).
    The language is ``?locale=``, else the browser's (``Accept-Language``)."""
    runtime: Runtime = state.runtime
    language = negotiate_locale(locale or request.headers.get("Accept-Language"))
    document = policy_document(
        policy_of(runtime), locale=language, operator_name=runtime.settings.operator_name
    )
    headers = {**VARIES_WITH, "Content-Language": document.locale}
    if request.accept.best_match([HTML, MARKDOWN], default=HTML) == MARKDOWN:
        return Response(
            render_markdown(document),
            media_type=f"{MARKDOWN}; charset=utf-8",
            headers={**SECURITY_HEADERS, **headers},
        )
    return page(
        "retention",
        locale=document.locale,
        headers=headers,
        document=document,
        operator_name=runtime.settings.operator_name,
    )
