"""What the guardian reads after a consent was given, in every shipped language: every email
about the consent names the child's account, the partial-withdrawal email tells a dashboard
user to sign in (and a link user to use the link), the confirmation email says what the
withdrawal page really asks, and the dashboard marks the required purpose, says what
withdrawing it does and until when the consent is valid."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jinja2
import pytest

from service.app import create_app
from service.consent.dashboard import PurposeState
from service.consent.purposes import Purpose, load_catalogue
from service.delivery import emails
from service.delivery.emails import RenderedEmail
from service.http.guardian_dashboard import TOO_MANY_SIGN_IN_LINKS
from service.i18n import DEFAULT_LOCALE, LOCALES, translator
from service.settings import load_settings
from tests.support.untranslated import english_only_texts, english_purpose_texts, readable

CATALOGUE = load_catalogue(None)
WHEN = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)
OPERATOR = "Astra Tutoring"
HINT = "mia_4b"
LINK = "https://consent.example.test/guardian/withdraw/xyz"
DASHBOARD = "https://consent.example.test/guardian"
CONCERNS = "This consent concerns the account “%(account)s”."
SIGN_IN_AT = (
    "You can withdraw your consent for the remaining purposes at any time by signing in at:"
)
SAME_LINK = (
    "You can withdraw your consent for the remaining purposes at any time with the same link:"
)
CHOOSE_AND_CONFIRM = (
    "You can withdraw your consent at any time with the link below. It opens a page where you "
    "choose what to withdraw and confirm; there you can also ask us to delete your child's "
    "data and your email address."
)
REQUIRED_NOTE = (
    "A required purpose is needed for the service to work: withdrawing it ends this consent "
    "altogether."
)
CHANGE_ADDRESS = "Change the email address for this child's consent"


@pytest.fixture(scope="module")
def pages(key_files: dict[str, str]) -> jinja2.Environment:
    """The guardian pages' environment exactly as the application sets it up."""
    settings = load_settings(
        {
            "CONSENT_DATABASE_URL": "postgresql://consent@127.0.0.1:1/consent",
            "CONSENT_SMTP_URL": "smtp://127.0.0.1:1",
            "CONSENT_MAIL_FROM": "consent@tutoring.example",
            "CONSENT_OPERATOR_NAME": OPERATOR,
            "CONSENT_PUBLIC_URL": "http://consent.test",
            "CONSENT_SIGNING_KEY_FILE": key_files["signing"],
            "CONSENT_DATA_KEY": key_files["data_key"],
        }
    )
    engine = create_app(settings).template_engine
    assert engine is not None
    environment: jinja2.Environment = engine.engine  # type: ignore[attr-defined]
    return environment


def after_consent_emails(locale: str, hint: str | None) -> dict[str, RenderedEmail]:
    purposes = CATALOGUE.purposes
    common: dict[str, Any] = {"locale": locale, "operator_name": OPERATOR, "child_hint": hint}
    return {
        "confirmation": emails.render_confirmation_email(
            **common,
            privacy_notice_url="https://tutor.example.test/privacy",
            granted=purposes[:2],
            refused=purposes[2:],
            withdraw_url=LINK,
            granted_at=WHEN,
            valid_until=WHEN,
        ),
        "withdrawn": emails.render_withdrawn_email(**common, purposes=purposes, withdrawn_at=WHEN),
        "withdrawn_erased": emails.render_withdrawn_email(
            **common, purposes=purposes, withdrawn_at=WHEN, erased=True
        ),
        "revoked": emails.render_revoked_email(**common, purposes=purposes, revoked_at=WHEN),
        "partly_by_link": emails.render_purposes_withdrawn_email(
            **common,
            withdrawn=purposes[2:],
            remaining=purposes[:2],
            withdraw_url=LINK,
            withdrawn_at=WHEN,
        ),
        "partly_signed_in": emails.render_purposes_withdrawn_email(
            **common,
            withdrawn=purposes[2:],
            remaining=purposes[:2],
            withdraw_url=DASHBOARD,
            withdrawn_at=WHEN,
            signed_in=True,
        ),
    }


def texts(email: RenderedEmail) -> tuple[str, str]:
    return readable(email.text), readable(email.html)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_email_after_a_consent_names_the_childs_account(locale: str) -> None:
    t = translator(locale)
    concerns = readable(t(CONCERNS, account=HINT))
    assert HINT in concerns
    for kind, email in after_consent_emails(locale, HINT).items():
        for text in texts(email):
            assert concerns in text, (kind, text)
    # without a hint, the line is left out rather than naming nothing
    around = [readable(part) for part in t(CONCERNS, account="\x00").split("\x00")]
    words = max(around, key=len)
    assert len(words) > 5
    for kind, email in after_consent_emails(locale, None).items():
        for text in texts(email):
            assert words not in text, kind


@pytest.mark.parametrize("locale", LOCALES)
def test_the_partial_withdrawal_email_tells_a_dashboard_user_to_sign_in(locale: str) -> None:
    t = translator(locale)
    rendered = after_consent_emails(locale, HINT)
    for text in texts(rendered["partly_signed_in"]):
        assert readable(t(SIGN_IN_AT)) in text
        assert readable(t(SAME_LINK)) not in text
        assert DASHBOARD in text
    for text in texts(rendered["partly_by_link"]):
        assert readable(t(SAME_LINK)) in text
        assert readable(t(SIGN_IN_AT)) not in text
    assert LINK in rendered["partly_by_link"].text
    assert f'href="{LINK}"' in rendered["partly_by_link"].html


@pytest.mark.parametrize("locale", LOCALES)
def test_the_confirmation_email_says_the_page_asks_what_to_withdraw(locale: str) -> None:
    t = translator(locale)
    for text in texts(after_consent_emails(locale, None)["confirmation"]):
        assert readable(t(CHOOSE_AND_CONFIRM)) in text
        assert "one click" not in text


def dashboard(pages: jinja2.Environment, locale: str) -> str:
    tutoring, progress, newsletter = CATALOGUE.purposes[:3]

    def line(purpose: Purpose, state: PurposeState) -> dict[str, object]:
        return {
            "id": purpose.id,
            "title": purpose.localized_title(locale),
            "state": state,
            "required": purpose.required,
        }

    child = {
        "consent_id": "0b6f0000-0000-4000-8000-000000000001",
        "child_hint": HINT,
        "live": True,
        "status": "granted",
        "granted_at": "GRANTED-AT",
        "valid_until": "VALID-UNTIL",
        "purposes": [
            line(tutoring, PurposeState.GIVEN),
            line(progress, PurposeState.GIVEN),
            line(newsletter, PurposeState.WITHDRAWN),
        ],
    }
    ended = {**child, "live": False, "status": "withdrawn", "valid_until": "ENDED-UNTIL"}
    return pages.get_template("guardian/dashboard.html").render(
        locale=locale,
        operator_name=OPERATOR,
        csrf_input="",
        children=[child, ended],
        PurposeState=PurposeState,
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_the_dashboard_marks_the_required_purpose_and_shows_the_end(
    pages: jinja2.Environment, locale: str
) -> None:
    t = translator(locale)
    document = dashboard(pages, locale)
    live, ended = document.split('<section class="rights-section child"')[1:3]
    # one "Required" badge per child: tutoring is the catalogue's only required purpose
    assert live.count('class="badge badge-required"') == 1
    assert f'<span class="badge badge-required">{t("Required")}</span>' in live
    assert readable(t(REQUIRED_NOTE)) in readable(live)
    assert f"{t('Valid until')}" in readable(live)
    assert "VALID-UNTIL" in live
    assert readable(t(CHANGE_ADDRESS)) in readable(live)
    # an ended consent has nothing left to withdraw, and no end date to count down to
    assert readable(t(REQUIRED_NOTE)) not in readable(ended)
    assert "ENDED-UNTIL" not in ended


@pytest.mark.parametrize("locale", [locale for locale in LOCALES if locale != DEFAULT_LOCALE])
def test_no_english_is_left_in_these_texts(pages: jinja2.Environment, locale: str) -> None:
    english = english_only_texts(locale) | english_purpose_texts(CATALOGUE, locale)
    documents = [dashboard(pages, locale), translator(locale).gettext(TOO_MANY_SIGN_IN_LINKS)]
    for email in after_consent_emails(locale, HINT).values():
        documents += [email.subject, email.text, email.html]
    for document in documents:
        text = readable(document, names=(OPERATOR,))
        assert [source for source in english if source in text] == []
    t = translator(locale)
    for message in (SIGN_IN_AT, CHOOSE_AND_CONFIRM, REQUIRED_NOTE, CHANGE_ADDRESS):
        assert t(message) != message
