"""Guardian pages, rendered for real from the shipped templates (no mocks): the review form,
link problems, results, withdrawal, errors, and a stylesheet that fetches nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pytest

from service.consent.purposes import load_catalogue
from service.http.guardian_pages import prepare_templates
from service.i18n import LOCALES, format_datetime, translator
from tests.support.rendering import category_names, esc, html_contains, notice_for

TEMPLATES = Path(__file__).resolve().parents[2] / "service" / "templates"
STATIC = Path(__file__).resolve().parents[2] / "service" / "static"
CATALOGUE = load_catalogue(None)
EXPIRES = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)
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


@pytest.fixture(scope="module")
def pages() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    prepare_templates(
        environment, operator_name="Astra Tutoring", operator_email="privacy@astra.test"
    )
    return environment


def review_context(locale: str = "en", **overrides: object) -> dict[str, object]:
    context: dict[str, object] = {
        "t": translator(locale),
        "locale": locale,
        "operator_name": "Astra Tutoring",
        "privacy_notice_url": PRIVACY_URL,
        "notice": notice_for(locale),
        "purposes": notice_for(locale).purposes,
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
    assert f'value="deny" class="button button-primary">{t("Refuse consent")}</button>' in page
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
        purposes=[{"id": "tutoring", "title": "Tutoring", "required": True}],
        granted_at=format_datetime(EXPIRES, "en"),
        form_action="/guardian/withdraw/abc",
        errors=["Something to fix"],
        csrf_input=CSRF_INPUT,
        offer_erase=True,
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
            erased_on_withdrawal=False,
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
