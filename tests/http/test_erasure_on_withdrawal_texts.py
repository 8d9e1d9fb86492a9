"""What the guardian reads about erasure on withdrawal, rendered in every shipped language:
the withdrawal form without the opt-in checkbox, the withdrawn page and the confirmation email
saying that the data is deleted and the app told to delete the child's data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pytest

from service.consent.purposes import load_catalogue
from service.consent.retention import retention_policy
from service.consent.retention_document import policy_document, render_markdown
from service.delivery.emails import render_withdrawn_email
from service.http.guardian_pages import prepare_templates
from service.i18n import LOCALES, format_datetime, translator
from service.settings import load_settings
from tests.support.rendering import esc

TEMPLATES = Path(__file__).resolve().parents[2] / "service" / "templates"
CATALOGUE = load_catalogue(None)
WITHDRAWN_AT = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)
OPERATOR = "Astra Tutoring"
CSRF_INPUT = '<input type="hidden" name="_csrf_token" value="t">'

DELETED = (
    "We have deleted your email address and the other personal data we held for this consent; "
    "this email is the last use of your address. We keep only a record without your address "
    "that consent was given and withdrawn, as the law requires us to be able to show."
)
APP_TOLD = "The %(operator)s app has been told to delete your child's data too."
REPLY_TO_DELETE = "If you also want your child's data deleted, reply to this email."
BEING_DELETED = (
    "Your email address and the other personal data we held for this consent are being "
    "deleted: your address is kept only until we have sent you the confirmation by email. We "
    "keep only a record without your address that consent was given and withdrawn, as the law "
    "requires us to be able to show."
)
FORM_NOTE = (
    "If you withdraw your consent altogether, we delete your email address and the other "
    "personal data we hold for this consent once we have sent you the confirmation, and we "
    "tell the %(operator)s app to delete your child's data."
)


@pytest.fixture(scope="module")
def pages() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    prepare_templates(
        environment, operator_name="Astra Tutoring", operator_email="privacy@tutoring.example"
    )
    return environment


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("locale", LOCALES)
def test_the_confirmation_says_the_data_is_deleted_and_the_app_told(locale: str) -> None:
    t = translator(locale)
    email = render_withdrawn_email(
        locale=locale,
        operator_name=OPERATOR,
        purposes=CATALOGUE.purposes,
        withdrawn_at=WITHDRAWN_AT,
        erased=True,
    )
    deleted = t(DELETED)
    app_told = t(APP_TOLD, operator=OPERATOR)
    if locale != "en":
        assert deleted != DELETED
        assert app_told != APP_TOLD % {"operator": OPERATOR}
    assert flat(deleted) in flat(email.text)
    assert flat(app_told) in flat(email.text)
    assert flat(esc(deleted)) in flat(email.html)
    assert flat(esc(app_told)) in flat(email.html)
    # nothing left to ask for: the reply-to-delete sentence is gone
    assert t(REPLY_TO_DELETE) not in email.text
    assert esc(t(REPLY_TO_DELETE)) not in email.html


@pytest.mark.parametrize("locale", LOCALES)
def test_without_erasure_the_confirmation_offers_deletion_by_reply(locale: str) -> None:
    t = translator(locale)
    email = render_withdrawn_email(
        locale=locale,
        operator_name=OPERATOR,
        purposes=CATALOGUE.purposes,
        withdrawn_at=WITHDRAWN_AT,
    )
    assert flat(t(REPLY_TO_DELETE)) in flat(email.text)
    assert flat(t(DELETED)) not in flat(email.text)
    assert flat(t(APP_TOLD, operator=OPERATOR)) not in flat(email.text)


@pytest.mark.parametrize("locale", LOCALES)
def test_the_withdrawn_page_says_the_data_is_deleted_and_the_app_told(
    pages: jinja2.Environment, locale: str
) -> None:
    t = translator(locale)
    page = pages.get_template("guardian/withdrawn.html").render(
        t=t,
        locale=locale,
        operator_name=OPERATOR,
        purposes=[{"id": "tutoring", "title": "Tutoring"}],
        erased=False,
        erased_on_withdrawal=True,
    )
    assert flat(esc(t(BEING_DELETED))) in flat(page)
    assert flat(esc(t(APP_TOLD, operator=OPERATOR))) in flat(page)
    if locale != "en":
        assert t(BEING_DELETED) != BEING_DELETED


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("offer_erase", [True, False])
def test_the_withdraw_form_offers_erasure_only_when_withdrawal_does_not_erase(
    pages: jinja2.Environment, locale: str, offer_erase: bool
) -> None:
    t = translator(locale)
    page = pages.get_template("guardian/withdraw.html").render(
        t=t,
        locale=locale,
        operator_name=OPERATOR,
        purposes=[{"id": "tutoring", "title": "Tutoring", "required": True}],
        granted_at=format_datetime(WITHDRAWN_AT, locale),
        form_action="/guardian/withdraw/abc",
        errors=[],
        csrf_input=CSRF_INPUT,
        offer_erase=offer_erase,
    )
    note = flat(esc(t(FORM_NOTE, operator=OPERATOR)))
    assert ('name="erase"' in page) == offer_erase
    assert (note in flat(page)) == (not offer_erase)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("erases", [True, False])
def test_the_retention_policy_says_what_a_withdrawal_keeps(
    base_env: dict[str, str], locale: str, erases: bool
) -> None:
    settings = load_settings({**base_env, "CONSENT_WITHDRAWAL_ERASES": str(erases).lower()})
    policy = retention_policy(settings, CATALOGUE)
    assert policy.withdrawal_erases is erases
    text = flat(render_markdown(policy_document(policy, locale=locale, operator_name=OPERATOR)))
    t = translator(locale)
    erased_at_once = t(
        "A withdrawal of the whole consent deletes at once the guardian's email address "
        "(kept, encrypted, only until the confirmation email has been sent), the birth date "
        "and the consent token, and tells the app to delete the child's data. Kept for the "
        "period above: the consent's status, purposes and dates under the child's "
        "pseudonymous id, and the audit trail, so that it can be shown what was consented to "
        "and when it was withdrawn."
    )
    pseudonyms = t(
        "When the periods above end, the records that stay keep the child's id and the "
        "guardian's reference only as keyed pseudonyms that identify no one without the "
        "service's key, and the audit trail's entries about them lose the child's id, reasons "
        "and details."
    )
    assert (flat(erased_at_once) in text) == erases
    assert flat(pseudonyms) in text
    if locale == "sl":
        assert ("Preklic celotnega soglasja takoj izbriše" in text) == erases
