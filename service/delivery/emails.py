"""Guardian emails (plain text + HTML) rendered from the Jinja templates in templates/email/.

Each message kind has one text and one HTML template; their words are gettext messages
(``service.i18n``) in the language of the message.
HTML emails carry inline styles only: no images, no remote resources, no tracking.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import jinja2
import msgspec

from service.i18n import (
    N_,
    format_date,
    format_datetime,
    install_translations,
    negotiate_locale,
    translator,
)

TEMPLATES_DIR = Path(__file__).parents[1] / "templates"


class Recipient(Protocol):
    """A third party a purpose discloses data to (the catalogue's ``Recipient`` has it)."""

    def localized_name(self, locale: str) -> str: ...
    def localized_why(self, locale: str) -> str: ...


class Purpose(Protocol):
    """What an email says of a purpose (the catalogue's ``Purpose`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def required(self) -> bool: ...
    @property
    def data_categories(self) -> list[str]: ...
    @property
    def retention_days(self) -> int: ...
    @property
    def recipients(self) -> Sequence[Recipient]: ...
    def localized_title(self, locale: str) -> str: ...
    def localized_description(self, locale: str) -> str: ...


class DirectNotice(Protocol):
    """The parts of the direct notice an email shows (``service.consent.notice.Notice``)."""

    @property
    def operator_name(self) -> str: ...
    @property
    def privacy_notice_url(self) -> str: ...
    def among(self, purpose_ids: list[str]) -> Sequence[Any]: ...


_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    # HTML templates are escaped; plain-text ones are not (they are never parsed as HTML).
    autoescape=jinja2.select_autoescape(
        enabled_extensions=("html", "html.j2"), default=False, default_for_string=False
    ),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
install_translations(_environment)


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    filename: str
    content_type: str
    text: str


class RenderedEmail(msgspec.Struct, frozen=True, kw_only=True):
    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...] = ()


def render_request_email(
    *,
    locale: str,
    notice: DirectNotice,
    review_url: str,
    expires_at: datetime,
    purpose_ids: Sequence[str],
    needs_stronger_method: Collection[str] = (),
    reconsent_until: datetime | None = None,
    child_hint: str | None = None,
    timezone: str = "UTC",
) -> RenderedEmail:
    """The direct notice asking a guardian for consent (COPPA 312.4(c)(1), GDPR Art. 13/14):
    the notice of the request's language with the requested purposes. ``needs_stronger_method``:
    ids of purposes that email plus cannot authorise here; they are listed with their
    recipients and a note that they cannot be given yet. ``reconsent_until``: the request asks
    again under a changed notice, and the current consent lasts until then. ``child_hint``:
    what the child said about themselves, so the guardian knows which account this is.
    ``timezone``: the zone the guardian reads times in (every render function has it)."""
    loc = negotiate_locale(locale)
    return _render(
        "request",
        N_("%(operator)s: your consent is needed for your child's account"),
        loc,
        notice.operator_name,
        notice=notice,
        privacy_notice_url=notice.privacy_notice_url,
        review_url=review_url,
        expires_at=format_datetime(expires_at, loc, timezone),
        purposes=[
            {
                **msgspec.structs.asdict(purpose),
                "needs_stronger_method": purpose.id in needs_stronger_method,
            }
            for purpose in notice.among(list(purpose_ids))
        ],
        reconsent_until=(
            format_datetime(reconsent_until, loc, timezone) if reconsent_until else None
        ),
        child_hint=child_hint,
    )


def render_reminder_email(
    *,
    locale: str,
    operator_name: str,
    review_url: str,
    expires_at: datetime,
    child_hint: str | None = None,
    timezone: str = "UTC",
) -> RenderedEmail:
    """A reminder to a guardian who has not decided yet, with a working review link; the
    review page shows the whole notice again."""
    loc = negotiate_locale(locale)
    return _render(
        "reminder",
        N_("Reminder from %(operator)s: your consent is needed for your child's account"),
        loc,
        operator_name,
        review_url=review_url,
        expires_at=format_datetime(expires_at, loc, timezone),
        child_hint=child_hint,
    )


def render_confirmation_email(
    *,
    locale: str,
    operator_name: str,
    privacy_notice_url: str,
    granted: Sequence[Purpose],
    refused: Sequence[Purpose],
    withdraw_url: str,
    granted_at: datetime,
    valid_until: datetime,
    timezone: str = "UTC",
    child_hint: str | None = None,
) -> RenderedEmail:
    """The "email plus" confirmation sent after a grant, with a withdrawal link;
    ``child_hint`` names the account it concerns."""
    loc = negotiate_locale(locale)
    return _render(
        "confirmation",
        N_("%(operator)s: confirmation of your consent"),
        loc,
        operator_name,
        privacy_notice_url=privacy_notice_url,
        granted=_purpose_views(granted, loc),
        refused=_purpose_views(refused, loc),
        withdraw_url=withdraw_url,
        granted_at=format_datetime(granted_at, loc, timezone),
        valid_until=format_datetime(valid_until, loc, timezone),
        child_hint=child_hint,
    )


def render_withdrawn_email(
    *,
    locale: str,
    operator_name: str,
    purposes: Sequence[Purpose],
    withdrawn_at: datetime,
    erased: bool = False,
    timezone: str = "UTC",
    child_hint: str | None = None,
) -> RenderedEmail:
    """Confirms a withdrawal made by the guardian; ``erased``: and that the data held for the
    consent is deleted and the app told to delete the child's data."""
    loc = negotiate_locale(locale)
    return _render(
        "withdrawn",
        N_("%(operator)s: your consent has been withdrawn"),
        loc,
        operator_name,
        purposes=_purpose_views(purposes, loc),
        withdrawn_at=format_datetime(withdrawn_at, loc, timezone),
        erased=erased,
        child_hint=child_hint,
    )


def render_copy_email(
    *,
    locale: str,
    operator_name: str,
    requested_at: datetime,
    filename: str,
    copy_json: str,
    timezone: str = "UTC",
) -> RenderedEmail:
    """The copy of the data a guardian asked for (GDPR Art. 15(3), 20), as a JSON file."""
    loc = negotiate_locale(locale)
    rendered = _render(
        "copy",
        N_("%(operator)s: the copy of your data"),
        loc,
        operator_name,
        requested_at=format_datetime(requested_at, loc, timezone),
        filename=filename,
    )
    return msgspec.structs.replace(
        rendered,
        attachments=(
            Attachment(filename=filename, content_type="application/json", text=copy_json),
        ),
    )


def render_purposes_withdrawn_email(
    *,
    locale: str,
    operator_name: str,
    withdrawn: Sequence[Purpose],
    remaining: Sequence[Purpose],
    withdraw_url: str,
    withdrawn_at: datetime,
    timezone: str = "UTC",
    child_hint: str | None = None,
    signed_in: bool = False,
) -> RenderedEmail:
    """Confirms that the guardian withdrew some purposes while keeping consent for the rest.
    ``signed_in``: withdrawn on the dashboard, so ``withdraw_url`` is the dashboard, where the
    guardian signs in again (a withdrawal link stays valid and is reused)."""
    loc = negotiate_locale(locale)
    return _render(
        "purposes_withdrawn",
        N_("%(operator)s: you withdrew part of your consent"),
        loc,
        operator_name,
        withdrawn=_purpose_views(withdrawn, loc),
        remaining=_purpose_views(remaining, loc),
        withdraw_url=withdraw_url,
        withdrawn_at=format_datetime(withdrawn_at, loc, timezone),
        child_hint=child_hint,
        signed_in=signed_in,
    )


REVOKED_WITHOUT_REASON = N_("Our support team ended the consent after reviewing it.")


def render_revoked_email(
    *,
    locale: str,
    operator_name: str,
    purposes: Sequence[Purpose],
    revoked_at: datetime,
    reason: str | None = None,
    reason_message: str | None = None,
    timezone: str = "UTC",
    child_hint: str | None = None,
) -> RenderedEmail:
    """Tells the guardian that support staff revoked the consent, and why, in words meant for
    the guardian: ``reason_message`` (a gettext message, translated here), else ``reason``
    (written for the guardian, shown as written), else a neutral sentence. Staff's internal
    reason never comes here."""
    loc = negotiate_locale(locale)
    if reason_message:
        shown = translator(loc).gettext(reason_message)
    elif reason:
        shown = reason
    else:
        shown = translator(loc).gettext(REVOKED_WITHOUT_REASON)
    return _render(
        "revoked",
        N_("%(operator)s: your consent has ended"),
        loc,
        operator_name,
        purposes=_purpose_views(purposes, loc),
        reason=shown,
        revoked_at=format_datetime(revoked_at, loc, timezone),
        child_hint=child_hint,
    )


def render_lapsing_email(
    *,
    locale: str,
    operator_name: str,
    purposes: Sequence[Purpose],
    comes_of_age_on: date,
    age_of_consent: int,
    lapses_at: datetime,
    retention_policy_url: str,
    timezone: str = "UTC",
) -> RenderedEmail:
    """Ahead of the coming of age: the consent ends and the young person decides alone."""
    loc = negotiate_locale(locale)
    return _render(
        "lapsing",
        N_("%(operator)s: your child will soon decide alone"),
        loc,
        operator_name,
        purposes=_purpose_views(purposes, loc),
        comes_of_age_on=format_date(comes_of_age_on, loc),
        age_of_consent=age_of_consent,
        lapses_at=format_datetime(lapses_at, loc, timezone),
        retention_policy_url=retention_policy_url,
    )


def render_replaced_email(
    *,
    locale: str,
    operator_name: str,
    purposes: Sequence[Purpose],
    replaced_at: datetime,
    timezone: str = "UTC",
) -> RenderedEmail:
    """Tells a guardian that another guardian's consent for the same child replaced theirs."""
    loc = negotiate_locale(locale)
    return _render(
        "replaced",
        N_("%(operator)s: your consent was replaced by another guardian's"),
        loc,
        operator_name,
        purposes=_purpose_views(purposes, loc),
        replaced_at=format_datetime(replaced_at, loc, timezone),
    )


def render_address_confirmation_email(
    *,
    locale: str,
    operator_name: str,
    confirm_url: str,
    expires_at: datetime,
    timezone: str = "UTC",
) -> RenderedEmail:
    """Sent to a guardian's new address: the address is used only once this link confirms it."""
    loc = negotiate_locale(locale)
    return _render(
        "address_confirmation",
        N_("%(operator)s: confirm your new email address"),
        loc,
        operator_name,
        confirm_url=confirm_url,
        expires_at=format_datetime(expires_at, loc, timezone),
    )


def render_address_changed_email(
    *,
    locale: str,
    operator_name: str,
    new_address: str,
    changed_at: datetime,
    timezone: str = "UTC",
) -> RenderedEmail:
    """Sent to a guardian's previous address once the new one confirmed: the consent is the
    same, only where we write to has changed. ``new_address`` is shown masked."""
    loc = negotiate_locale(locale)
    return _render(
        "address_changed",
        N_("%(operator)s: your email address has been changed"),
        loc,
        operator_name,
        new_address=new_address,
        changed_at=format_datetime(changed_at, loc, timezone),
    )


def render_sign_in_email(
    *,
    locale: str,
    operator_name: str,
    sign_in_url: str,
    expires_at: datetime,
    timezone: str = "UTC",
) -> RenderedEmail:
    """The guardian dashboard's sign-in link, sent only to an address that gave a consent."""
    loc = negotiate_locale(locale)
    return _render(
        "sign_in",
        N_("%(operator)s: your sign-in link"),
        loc,
        operator_name,
        sign_in_url=sign_in_url,
        expires_at=format_datetime(expires_at, loc, timezone),
    )


def render_handoff_code_email(
    *,
    locale: str,
    operator_name: str,
    code: str,
    expires_at: datetime,
    child_hint: str | None = None,
    timezone: str = "UTC",
) -> RenderedEmail:
    """The one-time code that confirms an address given on the handoff page. Whoever typed
    the address may be the child, so it says plainly whom the code is for and what entering
    it means."""
    loc = negotiate_locale(locale)
    return _render(
        "handoff_code",
        N_("%(operator)s: your code to confirm that you are the parent or guardian"),
        loc,
        operator_name,
        code=code,
        child_hint=child_hint,
        expires_at=format_datetime(expires_at, loc, timezone),
    )


def _purpose_views(
    purposes: Sequence[Purpose], locale: str, needs_stronger_method: Collection[str] = ()
) -> list[dict[str, Any]]:
    language = translator(locale)
    return [
        {
            "id": purpose.id,
            "title": purpose.localized_title(locale),
            "description": purpose.localized_description(locale),
            "required": purpose.required,
            "categories": [language.data_category(code) for code in purpose.data_categories],
            "retention": language.retention(purpose.retention_days),
            "recipients": [
                {"name": r.localized_name(locale), "why": r.localized_why(locale)}
                for r in purpose.recipients
            ],
            "needs_stronger_method": purpose.id in needs_stronger_method,
            "sharing": None,
        }
        for purpose in purposes
    ]


def _single_line(value: str) -> str:
    """Header-safe: no CR/LF (no header injection), runs of whitespace collapsed."""
    return " ".join(value.split())


def _render(
    kind: str, subject: str, locale: str, operator_name: str, **context: Any
) -> RenderedEmail:
    """``subject`` is a message with an ``%(operator)s`` placeholder."""
    subject = _single_line(
        translator(locale).gettext(subject, operator=_single_line(operator_name))
    )
    variables = {
        "locale": locale,
        "operator_name": operator_name,
        "subject": subject,
        **context,
    }
    text = _environment.get_template(f"email/{kind}.txt.j2").render(variables)
    html = _environment.get_template(f"email/{kind}.html.j2").render(variables)
    return RenderedEmail(subject=subject, text=text, html=html)
