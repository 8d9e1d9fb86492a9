"""Guardian emails, rendered for real from the shipped templates (no mocks)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest

from service.consent.purposes import load_catalogue
from service.delivery.emails import (
    RenderedEmail,
    render_confirmation_email,
    render_replaced_email,
    render_request_email,
    render_revoked_email,
    render_withdrawn_email,
)
from service.i18n import LOCALES, format_datetime, translator
from tests.support.rendering import category_names, esc, html_contains, notice_for

CATALOGUE = load_catalogue(None)
EXPIRES = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)
REVIEW_URL = "https://consent.example.test/guardian/Zm9vYmFyYmF6cXV4"
PRIVACY_URL = "https://tutor.example.test/privacy?lang=x&v=2026-11-01"
WITHDRAW_URL = "https://consent.example.test/guardian/withdraw/d2l0aGRyYXc"


def request_email(locale: str = "en", operator_name: str = "Astra Tutoring") -> RenderedEmail:
    return render_request_email(
        locale=locale,
        notice=notice_for(locale, operator_name=operator_name, privacy_notice_url=PRIVACY_URL),
        review_url=REVIEW_URL,
        expires_at=EXPIRES,
        purpose_ids=CATALOGUE.ids,
    )


def confirmation_email(locale: str = "en") -> RenderedEmail:
    tutoring, *optional = CATALOGUE.purposes
    return render_confirmation_email(
        locale=locale,
        operator_name="Astra Tutoring",
        privacy_notice_url=PRIVACY_URL,
        granted=[tutoring],
        refused=optional,
        withdraw_url=WITHDRAW_URL,
        granted_at=EXPIRES - timedelta(days=3),
        valid_until=datetime(2028, 6, 1, tzinfo=UTC),
    )


# --- request email (direct notice) ---------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_request_email_carries_the_direct_notice(locale: str) -> None:
    email = request_email(locale)
    expiry = format_datetime(EXPIRES, locale)
    for body, contains in ((email.text, str.__contains__), (email.html, html_contains)):
        assert contains(body, REVIEW_URL)
        assert contains(body, PRIVACY_URL)
        assert contains(body, expiry)
        for purpose in CATALOGUE.purposes:
            assert contains(body, purpose.localized_title(locale))
            assert contains(body, purpose.localized_description(locale))
            for name in category_names(purpose, locale):
                assert contains(body, name)
    t = translator(locale)
    for message in (
        "We received your email address from the child's signup and use it only to ask for "
        "this consent. If you give consent, we will also send you a confirmation with a link "
        "to withdraw it.",
        "If you do not answer before the link expires, we will delete your email address and "
        "this request.",
        "If you are not this child's parent or legal guardian, please ignore this email. We "
        "will not write to you again about this request.",
        "Consent is the legal basis for using your child's data for these purposes. You have "
        "these rights over your child's data and your own:",
        "Required",
        "Optional",
    ):
        assert t(message) in email.text
        assert esc(t(message)) in email.html
    nothing_before = (
        "Until you give consent, %(operator)s does not collect or use any data from your "
        "child's use of the service. If you refuse, nothing will be collected."
    )
    assert t(nothing_before, operator="Astra Tutoring") in email.text
    assert f'<html lang="{locale}">' in email.html
    assert "Astra Tutoring" in email.subject


def test_request_email_marks_required_and_optional_purposes() -> None:
    text = request_email("en").text
    assert "* Tutoring (Required)" in text
    assert "* Newsletter (Optional)" in text


@pytest.mark.parametrize("locale", LOCALES)
def test_html_emails_have_no_images_or_remote_resources(locale: str) -> None:
    documents = [
        request_email(locale).html,
        confirmation_email(locale).html,
        render_withdrawn_email(
            locale=locale, operator_name="A", purposes=CATALOGUE.purposes, withdrawn_at=EXPIRES
        ).html,
        render_revoked_email(
            locale=locale,
            operator_name="A",
            purposes=CATALOGUE.purposes,
            reason="duplicate account",
            revoked_at=EXPIRES,
        ).html,
        render_replaced_email(
            locale=locale, operator_name="A", purposes=CATALOGUE.purposes, replaced_at=EXPIRES
        ).html,
    ]
    for document in documents:
        lowered = document.lower()
        for forbidden in (
            "<img",
            "<script",
            "<link",
            "<style",
            "<iframe",
            "src=",
            "url(",
            "@import",
        ):
            assert forbidden not in lowered, forbidden
        # Every link is one of ours; nothing is fetched when the message is opened.
        for href in re.findall(r'href="([^"]*)"', document):
            assert html.unescape(href) in (REVIEW_URL, PRIVACY_URL, WITHDRAW_URL)


def test_slovenian_email_differs_from_english() -> None:
    english, slovenian = request_email("en"), request_email("sl")
    assert english.subject != slovenian.subject
    assert "soglasje" in slovenian.subject
    assert "Pozdravljeni" in slovenian.text
    assert "Dajem soglasje" in slovenian.text
    assert request_email("sl-SI").subject == slovenian.subject


def test_unknown_locale_falls_back_to_english() -> None:
    assert request_email("ja") == request_email("en")
    assert request_email("") == request_email("en")


def test_html_escapes_a_malicious_operator_name() -> None:
    name = '<script>alert("x")</script>'
    email = request_email("en", operator_name=name)
    assert "<script" not in email.html
    assert "&lt;script&gt;" in email.html
    assert name in email.text  # plain text is never parsed as HTML


def test_subject_is_a_single_header_line() -> None:
    email = request_email("en", operator_name="Evil\r\nBcc: victim@example.test")
    assert "\r" not in email.subject
    assert "\n" not in email.subject


# --- other emails ------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_confirmation_email_lists_decisions_and_withdraw_link(locale: str) -> None:
    email = confirmation_email(locale)
    for body, contains in ((email.text, str.__contains__), (email.html, html_contains)):
        assert contains(body, WITHDRAW_URL)
        assert contains(body, PRIVACY_URL)
        assert contains(body, format_datetime(datetime(2028, 6, 1, tzinfo=UTC), locale))
        for purpose in CATALOGUE.purposes:
            assert contains(body, purpose.localized_title(locale))
    t = translator(locale)
    assert t("You refused") in email.text
    assert email.subject != request_email(locale).subject


def test_confirmation_without_refusals_has_no_refused_section() -> None:
    email = render_confirmation_email(
        locale="en",
        operator_name="Astra Tutoring",
        privacy_notice_url=PRIVACY_URL,
        granted=CATALOGUE.purposes,
        refused=[],
        withdraw_url=WITHDRAW_URL,
        granted_at=EXPIRES,
        valid_until=EXPIRES,
    )
    assert "You refused" not in email.text
    assert "You refused" not in email.html


@pytest.mark.parametrize("locale", LOCALES)
def test_withdrawn_and_revoked_emails(locale: str) -> None:
    withdrawn = render_withdrawn_email(
        locale=locale,
        operator_name="Astra Tutoring",
        purposes=CATALOGUE.purposes[:1],
        withdrawn_at=EXPIRES,
    )
    revoked = render_revoked_email(
        locale=locale,
        operator_name="Astra Tutoring",
        purposes=CATALOGUE.purposes[:1],
        reason="Account <closed> at the school's request",
        revoked_at=EXPIRES,
    )
    title = CATALOGUE.purposes[0].localized_title(locale)
    for email in (withdrawn, revoked):
        assert title in email.text
        assert title in email.html
        assert format_datetime(EXPIRES, locale) in email.text
    assert "Account <closed> at the school's request" in revoked.text
    assert "Account &lt;closed&gt; at the school&#39;s request" in revoked.html
    assert len({withdrawn.subject, revoked.subject, request_email(locale).subject}) == 3


@pytest.mark.parametrize("locale", LOCALES)
def test_replaced_email_names_the_purposes_and_the_time(locale: str) -> None:
    email = render_replaced_email(
        locale=locale, operator_name="Učilnica", purposes=CATALOGUE.purposes, replaced_at=EXPIRES
    )
    assert "Učilnica" in email.subject
    for purpose in CATALOGUE.purposes:
        assert purpose.localized_title(locale) in email.text
    assert format_datetime(EXPIRES, locale) in email.text
    replaced_intro = (
        "Another parent or guardian has just given consent for the same child, and that consent "
        "now replaces the one you gave. Your consent is no longer in force."
    )
    assert translator(locale)(replaced_intro) in email.text
