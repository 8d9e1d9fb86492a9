"""The guardian dashboard's pages and its sign-in email, rendered in every shipped language
from the shipped templates, carry no untranslated message and no leftover placeholder."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import jinja2
import pytest

from service.app import create_app
from service.consent.dashboard import PurposeState
from service.consent.errors import FormError
from service.consent.purposes import load_catalogue
from service.delivery import emails
from service.http.guardian_dashboard import TOO_MANY_SIGN_IN_LINKS
from service.http.guardian_pages import form_errors
from service.i18n import DEFAULT_LOCALE, LOCALES, translator
from service.settings import load_settings
from tests.support.untranslated import english_only_texts, english_purpose_texts, readable

CATALOGUE = load_catalogue(None)
WHEN = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)
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


def _child(locale: str, *, hint: str | None, live: bool) -> dict[str, object]:
    states = list(PurposeState) if live else [PurposeState.ENDED]
    return {
        "consent_id": "0b6f0000-0000-4000-8000-000000000001",
        "child_hint": hint,
        "live": live,
        "status": "granted" if live else "withdrawn",
        "granted_at": "30. 11. 2026",
        "purposes": [
            {
                "id": purpose.id,
                "title": purpose.localized_title(locale),
                "state": states[index % len(states)],
                "required": purpose.required,
            }
            for index, purpose in enumerate(CATALOGUE.purposes)
        ],
    }


def rendered(pages: jinja2.Environment, locale: str) -> Iterator[str]:
    shared = {"locale": locale, "operator_name": "Astra Tutoring", "csrf_input": ""}

    def render(name: str, **context: object) -> str:
        return pages.get_template(f"guardian/{name}.html").render({**shared, **context})

    yield render(
        "dashboard_sign_in",
        form_action="/guardian",
        email="x",
        session_ended=True,
        **form_errors([FormError.EMAIL_INVALID], locale),
    )
    yield render("dashboard_sent", minutes=30)
    yield render("dashboard_sent", minutes=1)
    yield render("dashboard_continue", form_action="/guardian/sign-in/abc")
    for reason in ("unknown", "expired", "used", "not_yours"):
        yield render("dashboard_link", reason=reason)
    children = [
        _child(locale, hint="anna_k", live=True),
        _child(locale, hint=None, live=True),
        _child(locale, hint="bor", live=False),
    ]
    yield render("dashboard", children=children, PurposeState=PurposeState)
    yield render("dashboard", children=[], PurposeState=PurposeState)
    tutoring = CATALOGUE.purposes[0]
    yield render(
        "dashboard_confirm",
        child=children[0],
        purpose={"id": tutoring.id, "title": tutoring.localized_title(locale), "required": True},
        **form_errors([], locale),
    )
    for ended in (True, False):
        yield render(
            "dashboard_withdrawn",
            child_hint="anna_k",
            purposes=[{"id": "newsletter", "title": "x"}],
            ended=ended,
        )
    yield render("dashboard_signed_out")
    email = emails.render_sign_in_email(
        locale=locale,
        operator_name="Astra Tutoring",
        sign_in_url="https://consent.example.test/guardian/sign-in/abc",
        expires_at=WHEN,
        timezone="Europe/Ljubljana",
    )
    yield email.subject
    yield email.text
    yield email.html
    yield translator(locale).gettext(TOO_MANY_SIGN_IN_LINKS)


@pytest.mark.parametrize("locale", LOCALES)
def test_no_placeholder_is_left(pages: jinja2.Environment, locale: str) -> None:
    for document in rendered(pages, locale):
        assert not PLACEHOLDER_LEFT.findall(html.unescape(document))


@pytest.mark.parametrize("locale", [locale for locale in LOCALES if locale != DEFAULT_LOCALE])
def test_no_english_is_left_on_a_dashboard_page_or_in_its_email(
    pages: jinja2.Environment, locale: str
) -> None:
    english = english_only_texts(locale) | english_purpose_texts(CATALOGUE, locale)
    assert english
    documents = list(rendered(pages, locale))
    assert len(documents) == 18
    for document in documents:
        text = readable(document, names=("Astra Tutoring",))
        assert [source for source in english if source in text] == []
    # the new texts really are in the language, not only free of English sentences
    board = readable(documents[8])
    assert "Your children's consents" not in board
    assert "anna_k" in board


def test_the_english_pages_say_what_they_are_for(pages: jinja2.Environment) -> None:
    documents = [readable(d) for d in rendered(pages, DEFAULT_LOCALE)]
    assert "Send me a sign-in link" in documents[0]
    assert "If this address has given consent for a child" in documents[1]
    assert "for 30 minutes" in documents[1]
    assert "for 1 minute." in documents[2]
    assert "Account “anna_k”" in documents[8]
    assert "Account without a name" in documents[8]
    assert "This consent concerns the account “anna_k”." in documents[10]
    assert "withdrawing it ends your consent altogether" in documents[10]
    assert documents[14] == "Astra Tutoring: your sign-in link"
