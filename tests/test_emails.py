"""Guardian emails and pages, rendered for real from the shipped templates (no mocks)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jinja2
import markupsafe
import pytest

from service.consent.purposes import Purpose, load_catalogue
from service.delivery.emails import (
    RenderedEmail,
    render_confirmation_email,
    render_replaced_email,
    render_request_email,
    render_revoked_email,
    render_withdrawn_email,
)
from service.i18n import (
    LOCALES,
    format_datetime,
    install_translations,
    negotiate_locale,
    translator,
)

TEMPLATES = Path(__file__).resolve().parent.parent / "service" / "templates"
STATIC = Path(__file__).resolve().parent.parent / "service" / "static"
CATALOGUE = load_catalogue(None)
EXPIRES = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)
REVIEW_URL = "https://consent.example.test/guardian/Zm9vYmFyYmF6cXV4"
PRIVACY_URL = "https://tutor.example.test/privacy?lang=x&v=2026-11-01"
WITHDRAW_URL = "https://consent.example.test/guardian/withdraw/d2l0aGRyYXc"
CSRF_INPUT = '<input type="hidden" name="_csrf_token" value="csrf-value" />'
LINK_REASONS = ("unknown", "expired", "used", "locked", "not_live")
LINK_PROBLEM_TEXTS = {  # heading, what to do
    "unknown": (
        "This link is not valid",
        "Open the link directly from the email. If it still does not work, ask your child to "
        "send a new request from the signup page.",
    ),
    "expired": (
        "This link has expired",
        "If you want to give consent, ask your child to send a new request from the signup "
        "page. You will receive a new email.",
    ),
    "used": (
        "This link has already been used",
        "To withdraw a consent you gave, use the link in your confirmation email. To decide "
        "again, ask your child to send a new request from the signup page.",
    ),
    "locked": (
        "This link has been locked",
        "Ask your child to send a new request from the signup page. You will receive a new email.",
    ),
    "not_live": (
        "This consent is no longer active",
        "If you want your child to use the service again, ask them to send a new request from "
        "the signup page.",
    ),
}


def request_email(locale: str = "en", operator_name: str = "Astra Tutoring") -> RenderedEmail:
    return render_request_email(
        locale=locale,
        operator_name=operator_name,
        privacy_notice_url=PRIVACY_URL,
        review_url=REVIEW_URL,
        expires_at=EXPIRES,
        purposes=CATALOGUE.purposes,
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


def esc(value: str) -> str:
    """Escaped as Jinja escapes (markupsafe: ' becomes &#39;, not &#x27;)."""
    return str(markupsafe.escape(value))


def html_contains(document: str, value: str) -> bool:
    return esc(value) in document


def category_names(purpose: Purpose, locale: str) -> list[str]:
    t = translator(locale)
    return [t.data_category(category) for category in purpose.data_categories]


# --- i18n -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sl", "sl"),
        ("sl-SI", "sl"),
        ("SL", "sl"),
        ("sl_SI", "sl"),
        ("en-US", "en"),
        ("de-DE", "en"),
        ("", "en"),
        (None, "en"),
        ("fr-FR,sl;q=0.8,en;q=0.5", "sl"),
        ("en;q=0.4, sl-SI;q=0.9", "sl"),
        ("*", "en"),
    ],
)
def test_negotiate_locale(value: str | None, expected: str) -> None:
    assert negotiate_locale(value) == expected


def test_translator_falls_back_to_english_then_key() -> None:
    assert translator("de")("Give consent") == "Give consent"
    assert translator("sl")("Give consent") != "Give consent"
    assert translator("sl")("no.such.key") == "no.such.key"
    assert translator("en").data_category("account") != "account"
    assert translator("sl").data_category("telemetry") == "telemetry"


def test_every_slovenian_string_exists_in_english() -> None:
    from babel.messages.pofile import read_po

    from service.i18n import LOCALE_DIR

    with (LOCALE_DIR / "messages.pot").open("rb") as template:
        english = read_po(template)
    with (LOCALE_DIR / "sl" / "LC_MESSAGES" / "messages.po").open("rb") as catalog:
        slovenian = read_po(catalog)
    for message in slovenian:
        if message.id:
            assert english.get(message.id, message.context) is not None, message.id


RETRY_SECONDS = ("Please try again in %(num)d second.", "Please try again in %(num)d seconds.")


def test_slovenian_plural_forms() -> None:
    t = translator("sl")
    assert t.ngettext(*RETRY_SECONDS, 1) == "Poskusite znova čez 1 sekundo."
    assert t.ngettext(*RETRY_SECONDS, 2) == "Poskusite znova čez 2 sekundi."
    assert t.ngettext(*RETRY_SECONDS, 3) == "Poskusite znova čez 3 sekunde."
    assert t.ngettext(*RETRY_SECONDS, 5) == "Poskusite znova čez 5 sekund."
    assert t.ngettext(*RETRY_SECONDS, 101) == "Poskusite znova čez 101 sekundo."
    assert translator("en").ngettext(*RETRY_SECONDS, 1) == "Please try again in 1 second."


def test_format_datetime() -> None:
    moment = datetime(2026, 11, 30, 15, 5, tzinfo=UTC) + timedelta(hours=-1)
    assert format_datetime(moment, "en") == "30 November 2026, 14:05 UTC"
    assert format_datetime(moment, "sl") == "30. november 2026 ob 14:05 UTC"
    assert format_datetime(moment, "xx") == "30 November 2026, 14:05 UTC"
    from zoneinfo import ZoneInfo

    ljubljana = moment.astimezone(ZoneInfo("Europe/Ljubljana"))
    assert format_datetime(ljubljana, "en") == "30 November 2026, 14:05 UTC"


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
        "Consent is the legal basis for using your child's data for these purposes. You can "
        "withdraw it at any time; this does not affect the lawfulness of what was done before "
        "the withdrawal. You can ask us for access to your child's data, a copy of it, its "
        "correction or its deletion, and you can lodge a complaint with a data protection "
        "supervisory authority.",
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
    assert request_email("de") == request_email("en")
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


# --- guardian pages ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pages() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    install_translations(environment)
    return environment


def review_context(locale: str = "en", **overrides: object) -> dict[str, object]:
    context: dict[str, object] = {
        "t": translator(locale),
        "locale": locale,
        "operator_name": "Astra Tutoring",
        "privacy_notice_url": PRIVACY_URL,
        "purposes": [
            {
                "id": p.id,
                "title": p.localized_title(locale),
                "description": p.localized_description(locale),
                "required": p.required,
                "data_categories": p.data_categories,
            }
            for p in CATALOGUE.purposes
        ],
        "expires_at": format_datetime(EXPIRES, locale),
        "form_action": "/guardian/Zm9vYmFy",
        "errors": [],
        "selected": set(),
        "attested": False,
        "csrf_input": CSRF_INPUT,
    }
    context.update(overrides)
    return context


def assert_csp_clean(page: str) -> None:
    lowered = page.lower()
    assert "style=" not in lowered
    assert "<style" not in lowered
    assert "<script" not in lowered
    assert not re.search(r"\son[a-z]+\s*=", lowered), "inline event handler"
    assert '<link rel="stylesheet" href="/static/guardian.css">' in page
    assert 'name="viewport"' in page


def checkbox(page: str, input_id: str) -> str:
    match = re.search(rf'<input [^>]*id="{re.escape(input_id)}"[^>]*>', page)
    assert match, input_id
    return match.group(0)


@pytest.mark.parametrize("locale", LOCALES)
def test_review_page(pages: jinja2.Environment, locale: str) -> None:
    page = pages.get_template("guardian/review.html").render(review_context(locale))
    t = translator(locale)
    assert_csp_clean(page)
    assert f'<html lang="{locale}">' in page
    assert CSRF_INPUT in page
    assert '<form method="post" action="/guardian/Zm9vYmFy"' in page
    assert f'value="grant" class="button button-primary">{t("Give consent")}</button>' in page
    assert f'value="deny" class="button button-secondary">{t("Refuse consent")}</button>' in page
    attestation = checkbox(page, "attestation")
    assert 'name="attestation"' in attestation
    assert 'value="yes"' in attestation
    assert "checked" not in attestation
    attestation_label = (
        "I am the parent or legal guardian of this child and have parental responsibility"
    )
    assert f'<label for="attestation">{esc(t(attestation_label))}</label>' in page
    assert html_contains(page, PRIVACY_URL)
    assert html_contains(page, format_datetime(EXPIRES, locale))
    assert "<fieldset" in page
    assert "<legend>" in page
    assert 'role="alert"' not in page
    for purpose in CATALOGUE.purposes:
        box = checkbox(page, f"purpose-{purpose.id}")
        assert 'name="purposes"' in box
        assert f'value="{purpose.id}"' in box
        assert ("checked" in box) == purpose.required
        assert f'<label for="purpose-{purpose.id}">' in page
        for name in category_names(purpose, locale):
            assert html_contains(page, name)


def test_review_page_english_labels(pages: jinja2.Environment) -> None:
    page = pages.get_template("guardian/review.html").render(review_context("en"))
    assert ">Give consent</button>" in page
    assert ">Refuse consent</button>" in page
    assert '<label for="attestation">I am the parent or legal guardian' in page
    assert "Required" in page


def test_review_page_keeps_choices_and_shows_errors(pages: jinja2.Environment) -> None:
    page = pages.get_template("guardian/review.html").render(
        review_context(
            "en",
            errors=["Please confirm that you are the child's parent or guardian."],
            selected={"newsletter"},
            attested=True,
        )
    )
    assert 'role="alert"' in page
    assert "Please confirm that you are the child&#39;s parent or guardian." in page
    assert "checked" in checkbox(page, "purpose-newsletter")
    assert "checked" not in checkbox(page, "purpose-progress_reports")
    assert "checked" in checkbox(page, "purpose-tutoring")
    assert "checked" in checkbox(page, "attestation")


def test_review_page_escapes_operator_name(pages: jinja2.Environment) -> None:
    page = pages.get_template("guardian/review.html").render(
        review_context("en", operator_name="<script>alert(1)</script>")
    )
    assert "<script" not in page
    assert "&lt;script&gt;" in page


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("reason", LINK_REASONS)
def test_link_problem_pages(pages: jinja2.Environment, locale: str, reason: str) -> None:
    t = translator(locale)
    page = pages.get_template("guardian/link_problem.html").render(
        t=t, locale=locale, reason=reason
    )
    assert_csp_clean(page)
    heading, next_step = LINK_PROBLEM_TEXTS[reason]
    assert f"<h1>{esc(t(heading))}</h1>" in page
    assert esc(t(next_step)) in page
    assert "<form" not in page


def test_link_problem_pages_differ_and_unknown_reason_is_safe(pages: jinja2.Environment) -> None:
    template = pages.get_template("guardian/link_problem.html")
    rendered = {
        reason: template.render(t=translator("en"), locale="en", reason=reason)
        for reason in LINK_REASONS
    }
    assert len(set(rendered.values())) == len(LINK_REASONS)
    odd = template.render(t=translator("en"), locale="en", reason="<b>weird</b>")
    assert odd == rendered["unknown"]


@pytest.mark.parametrize("locale", LOCALES)
def test_result_pages(pages: jinja2.Environment, locale: str) -> None:
    template = pages.get_template("guardian/result.html")
    granted = template.render(
        t=translator(locale),
        locale=locale,
        operator_name="Astra Tutoring",
        outcome="granted",
        granted=[{"id": "tutoring", "title": "Tutoring"}],
        refused=[{"id": "newsletter", "title": "Newsletter"}],
        withdraw_url=WITHDRAW_URL,
        confirmation_delay_hours=24,
    )
    denied = template.render(
        t=translator(locale),
        locale=locale,
        operator_name="Astra Tutoring",
        outcome="denied",
        granted=[],
        refused=[{"id": "tutoring", "title": "Tutoring"}],
        withdraw_url=None,
        confirmation_delay_hours=0,
    )
    for page in (granted, denied):
        assert_csp_clean(page)
    assert html_contains(granted, WITHDRAW_URL)
    assert "Newsletter" in granted
    assert "24" in granted
    if locale == "en":
        heading = re.search(r"<h1>(.*?)</h1>", granted)
        assert heading
        assert "Thank you" in heading.group(1)
        assert "consent" in heading.group(1)
        assert "refused" in denied
        assert "No data about your child will be collected or used." in denied


def test_withdraw_pages(pages: jinja2.Environment) -> None:
    page = pages.get_template("guardian/withdraw.html").render(
        t=translator("en"),
        locale="en",
        operator_name="Astra Tutoring",
        purposes=[{"id": "tutoring", "title": "Tutoring"}],
        granted_at=format_datetime(EXPIRES, "en"),
        form_action="/guardian/withdraw/abc",
        errors=["Something to fix"],
        csrf_input=CSRF_INPUT,
    )
    assert_csp_clean(page)
    assert CSRF_INPUT in page
    assert 'role="alert"' in page
    assert '<button type="submit" name="confirm" value="yes"' in page
    assert ">Withdraw consent</button>" in page
    erase = checkbox(page, "erase")
    assert 'name="erase"' in erase
    assert 'value="yes"' in erase
    assert "checked" not in erase
    assert '<label for="erase">Also delete my child&#39;s data and my email address</label>' in page

    for erased in (True, False):
        done = pages.get_template("guardian/withdrawn.html").render(
            t=translator("sl"),
            locale="sl",
            operator_name="Astra Tutoring",
            purposes=[{"id": "tutoring", "title": "Inštrukcije"}],
            erased=erased,
        )
        assert_csp_clean(done)
        assert "Inštrukcije" in done
        erased_text = translator("sl")(
            "Your child's data and your email address have been deleted."
        )
        assert (erased_text in done) == erased


@pytest.mark.parametrize(
    ("status", "retry_after"), [(429, 30), (429, 600), (429, None), (500, None)]
)
def test_error_page(pages: jinja2.Environment, status: int, retry_after: int | None) -> None:
    page = pages.get_template("guardian/error.html").render(
        t=translator("en"),
        locale="en",
        status=status,
        message="Too many submissions from your network.",
        retry_after=retry_after,
    )
    assert_csp_clean(page)
    assert "Too many submissions from your network." in page
    assert str(status) in page
    if retry_after == 30:
        assert "Please try again in 30 seconds." in page
    if retry_after == 600:
        assert "Please try again in 10 minutes." in page


def test_error_page_without_retry_after(pages: jinja2.Environment) -> None:
    page = pages.get_template("guardian/error.html").render(
        t=translator("sl"), locale="sl", status=404, message=""
    )
    assert_csp_clean(page)
    assert "Strani ni mogoče najti" in page


def test_stylesheet_is_self_contained() -> None:
    css = (STATIC / "guardian.css").read_text(encoding="utf-8")
    assert "@import" not in css
    assert "url(" not in css
    assert ":focus-visible" in css


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
