"""How guardian pages are rendered: the template response, its security headers, and the
pages that explain an unusable link or an error to a person in a browser."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jinja2
from litestar import Request
from litestar.response import Template

from service.consent.errors import FormError
from service.i18n import N_, install_translations, negotiate_locale, translator
from service.states import LinkProblemReason, RequestStatus

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

# What the guardian is told about a form that cannot be accepted, by the problem's code.
FORM_ERRORS = {
    FormError.DECISION: N_("Please choose whether to give or refuse consent."),
    FormError.PURPOSES: N_("Please choose only from the purposes listed on this page."),
    FormError.ATTESTATION: N_("Please confirm that you are the child's parent or legal guardian."),
    FormError.CONFIRM: N_("Please confirm that you want to withdraw your consent."),
    FormError.METHOD_TOO_WEAK: N_(
        "A purpose that shares your child's data with others cannot be given here yet: it needs "
        "a stronger way of checking that you are the parent. Nothing was recorded."
    ),
    FormError.WITHDRAW_NONE: N_("Please tick at least one purpose to withdraw."),
    FormError.ERASE_PARTIAL: N_(
        "Your child's data can only be deleted when you withdraw your consent altogether. "
        "Also tick the required purpose, or leave deletion unticked."
    ),
    FormError.NOTICE_CHANGED: N_(
        "The information on this page changed after you opened it. Please read it again "
        "before you decide."
    ),
    FormError.EMAIL_INVALID: N_(
        "Please enter one email address, such as name@example.com, without spaces or a name "
        "around it."
    ),
    FormError.EMAIL_UNCHANGED: N_(
        "This is the address we already use for you. Please enter the new address."
    ),
    FormError.ADDRESS_CHANGES_EXHAUSTED: N_(
        "Your address has been changed too often today, so this change was not accepted. "
        "Please try again tomorrow."
    ),
    FormError.ERASE_CONFIRM: N_(
        "Please confirm that you want your child's data and your email address deleted."
    ),
    FormError.COMPLAINT: N_(
        "Please write what your complaint is about, in at most 2,000 characters."
    ),
}
# The form field each problem is shown next to (its id on the page is "<field>-error").
FIELD_OF_ERROR = {
    FormError.DECISION: "decision",
    FormError.PURPOSES: "purposes",
    FormError.ATTESTATION: "attestation",
    FormError.CONFIRM: "confirm",
    FormError.WITHDRAW_NONE: "purposes",
    FormError.METHOD_TOO_WEAK: "purposes",
    # The page is shown again with the current notice; the decision is what must be made anew.
    FormError.NOTICE_CHANGED: "decision",
    FormError.ERASE_PARTIAL: "erase",
    FormError.EMAIL_INVALID: "email",
    FormError.EMAIL_UNCHANGED: "email",
    FormError.ADDRESS_CHANGES_EXHAUSTED: "email",
    FormError.ERASE_CONFIRM: "erase_confirm",
    FormError.COMPLAINT: "complaint",
}
TOO_MANY_SUBMISSIONS = N_(
    "Too many forms have been sent from your network in a short time, so this one was not accepted."
)
FORM_EXPIRED = N_(
    "The form could not be accepted: it has expired or your browser did not send its security "
    "cookie. Go back, reload the page and submit it again."
)


def form_errors(errors: Sequence[FormError], locale: str) -> dict[str, Any]:
    """A form page's ``errors`` (the summary at the top) and ``field_errors`` (each shown by
    its field, which points to it with ``aria-describedby``), in the page's language."""
    language = translator(locale)
    messages = [(FIELD_OF_ERROR[error], language.gettext(FORM_ERRORS[error])) for error in errors]
    field_errors: dict[str, list[str]] = {}
    for field, message in messages:
        field_errors.setdefault(field, []).append(message)
    return {"errors": [message for _, message in messages], "field_errors": field_errors}


# The states guardian templates compare against, by name.
STATES_IN_TEMPLATES = {"RequestStatus": RequestStatus, "LinkProblemReason": LinkProblemReason}


def prepare_templates(
    environment: jinja2.Environment, *, operator_name: str, operator_email: str
) -> None:
    """What every guardian template may use: the gettext functions, which follow each page's
    ``locale``, the states it compares against, and whom a guardian may ask (an error page is
    rendered before anything else is known, and still names the operator and its contact)."""
    install_translations(environment)
    environment.globals.update(STATES_IN_TEMPLATES)
    environment.globals["operator_contact"] = {"name": operator_name, "email": operator_email}


def page(
    name: str,
    *,
    locale: str,
    http_status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    return Template(
        template_name=f"guardian/{name}.html",
        context={
            "locale": locale,
            **context,
        },
        status_code=http_status,
        headers={**SECURITY_HEADERS, **(headers or {})},
        media_type="text/html",
    )


def link_problem_page(
    reason: LinkProblemReason,
    *,
    locale: str,
    http_status: int,
    headers: dict[str, str] | None = None,
) -> Template:
    return page(
        "link_problem", locale=locale, http_status=http_status, headers=headers, reason=reason
    )


def error_page(
    request: Request[Any, Any, Any],
    status: int,
    *,
    headers: dict[str, str] | None = None,
    message: str | None = None,
    locale: str | None = None,
) -> Template:
    """An error on a guardian page (bad form, expired CSRF cookie, database down) as HTML."""
    locale = locale or negotiate_locale(request.headers.get("accept-language"))
    if message is None:
        message = translator(locale).gettext(FORM_EXPIRED) if status == 403 else ""
    retry = (headers or {}).get("Retry-After")
    return page(
        "error",
        locale=locale,
        http_status=status,
        headers=headers,
        status=status,
        message=message,
        retry_after=int(retry) if retry and retry.isdigit() else None,
    )
