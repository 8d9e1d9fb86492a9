"""Every email and guardian page, rendered in every shipped language, is fully translated."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import jinja2
import pytest

from service.app import create_app
from service.consent.purposes import load_catalogue
from service.delivery import emails
from service.http.guardian_pages import FORM_ERRORS, FORM_EXPIRED
from service.i18n import DEFAULT_LOCALE, LOCALES, format_datetime, translator
from service.settings import load_settings
from tests.support.rendering import notice_for
from tests.support.untranslated import english_only_texts, english_purpose_texts, readable

CATALOGUE = load_catalogue(None)
WHEN = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)
LINK_REASONS = ("unknown", "expired", "used", "locked", "not_live", "superseded", "not_required")
# what a message key of the old lookup tables looked like ("review.grant", "error.confirm")
MESSAGE_KEY = re.compile(
    r"\b(?:common|email|review|result|withdraw|withdrawn|link|error|category)\.[a-z_]+\b"
)
PLACEHOLDER_LEFT = re.compile(r"%\(\w+\)|\{\w+\}")


@pytest.fixture(scope="module")
def pages(key_files: dict[str, str]) -> jinja2.Environment:
    """The guardian pages' environment exactly as the application sets it up."""
    settings = load_settings(
        {
            "CONSENT_DATABASE_URL": "postgresql://consent@127.0.0.1:1/consent",
            "CONSENT_SMTP_URL": "smtp://127.0.0.1:1",
            "CONSENT_MAIL_FROM": "consent@tutoring.example",
            "CONSENT_OPERATOR_NAME": "Astra Tutoring",
            "CONSENT_PUBLIC_URL": "http://consent.test",
            "CONSENT_SIGNING_KEY_FILE": key_files["signing"],
            "CONSENT_DATA_KEY": key_files["data_key"],
        }
    )
    engine = create_app(settings).template_engine
    assert engine is not None
    environment: jinja2.Environment = engine.engine  # type: ignore[attr-defined]
    return environment


def rendered_emails(locale: str) -> Iterator[str]:
    purposes = CATALOGUE.purposes
    common = {"locale": locale, "operator_name": "Astra Tutoring"}
    for email in (
        emails.render_request_email(
            locale=locale,
            notice=notice_for(locale),
            review_url="https://consent.example.test/guardian/abc",
            expires_at=WHEN,
            purpose_ids=CATALOGUE.ids,
        ),
        emails.render_request_email(
            locale=locale,
            notice=notice_for(locale),
            review_url="https://consent.example.test/guardian/abc",
            expires_at=WHEN,
            purpose_ids=CATALOGUE.ids,
            reconsent_until=WHEN,
        ),
        emails.render_confirmation_email(
            **common,
            privacy_notice_url="https://tutor.example.test/privacy",
            granted=purposes[:1],
            refused=purposes[1:],
            withdraw_url="https://consent.example.test/guardian/withdraw/xyz",
            granted_at=WHEN,
            valid_until=WHEN,
        ),
        emails.render_withdrawn_email(**common, purposes=purposes, withdrawn_at=WHEN),
        emails.render_revoked_email(
            **common, purposes=purposes, reason="duplicate account", revoked_at=WHEN
        ),
        emails.render_replaced_email(**common, purposes=purposes, replaced_at=WHEN),
    ):
        yield email.subject
        yield email.text
        yield email.html


def rendered_pages(pages: jinja2.Environment, locale: str) -> Iterator[str]:
    language = translator(locale)
    titles = [{"id": p.id, "title": p.localized_title(locale)} for p in CATALOGUE.purposes]
    shared = {"locale": locale, "operator_name": "Astra Tutoring", "csrf_input": ""}

    def render(name: str, **context: object) -> str:
        return pages.get_template(f"guardian/{name}.html").render({**shared, **context})

    yield render(
        "review",
        privacy_notice_url="https://tutor.example.test/privacy",
        notice=notice_for(locale),
        purposes=notice_for(locale).purposes,
        expires_at=format_datetime(WHEN, locale),
        form_action="/guardian/abc",
        errors=[language.gettext(FORM_ERRORS[code]) for code in FORM_ERRORS],
        selected=set(),
        attested=False,
    )
    for outcome, delay in (("granted", 0), ("granted", 3), ("denied", 0)):
        yield render(
            "result",
            outcome=outcome,
            granted=titles[:1] if outcome == "granted" else [],
            refused=titles[1:],
            withdraw_url="/guardian/withdraw/xyz" if outcome == "granted" else None,
            confirmation_delay_hours=delay,
        )
    yield render(
        "withdraw",
        purposes=titles,
        granted_at=format_datetime(WHEN, locale),
        form_action="/guardian/withdraw/xyz",
        errors=[language.gettext(FORM_ERRORS["confirm"])],
    )
    for erased in (True, False):
        yield render("withdrawn", purposes=titles, erased=erased)
    for reason in LINK_REASONS:
        yield render("link_problem", reason=reason)
    for status, retry_after in ((403, None), (404, None), (429, 30), (429, 600), (500, None)):
        message = language.gettext(FORM_EXPIRED) if status == 403 else ""
        yield render("error", status=status, message=message, retry_after=retry_after)


@pytest.mark.parametrize("locale", LOCALES)
def test_no_message_key_or_placeholder_reaches_a_guardian(
    pages: jinja2.Environment, locale: str
) -> None:
    renders = [*rendered_emails(locale), *rendered_pages(pages, locale)]
    assert len(renders) == 18 + 19  # subject, text and HTML of 6 emails; 19 page states
    for document in renders:
        text = html.unescape(document)
        assert not MESSAGE_KEY.findall(text)
        assert not PLACEHOLDER_LEFT.findall(text)


@pytest.mark.parametrize("locale", [locale for locale in LOCALES if locale != DEFAULT_LOCALE])
def test_no_english_is_left_in_a_translated_email_or_page(
    pages: jinja2.Environment, locale: str
) -> None:
    english = english_only_texts(locale) | english_purpose_texts(CATALOGUE, locale)
    assert english
    for document in [*rendered_emails(locale), *rendered_pages(pages, locale)]:
        text = readable(document, names=("Astra Tutoring",))
        assert [source for source in english if source in text] == []


@pytest.mark.parametrize("locale", LOCALES)
def test_every_data_category_of_the_shipped_catalogue_has_a_name(locale: str) -> None:
    codes = {code for purpose in CATALOGUE.purposes for code in purpose.data_categories}
    language = translator(locale)
    for code in codes:
        assert language.data_category(code) != code
    assert language.data_category("telemetry") == "telemetry"  # an operator's own category
