"""The handoff's email and pages, rendered in every shipped language, are fully translated,
and the code email says whom the code is for in each of them."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import jinja2
import pytest

from service.app import create_app
from service.delivery import emails
from service.http import guardian_handoff
from service.i18n import DEFAULT_LOCALE, LOCALES, format_datetime, translator
from service.settings import load_settings
from tests.support.rendering import notice_for
from tests.support.untranslated import english_only_texts, readable

WHEN = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)
PLACEHOLDER_LEFT = re.compile(r"%\(\w+\)|\{\w+\}")
ALL_MESSAGES = [
    *guardian_handoff.PROBLEM_TEXTS.values(),
    guardian_handoff.EMAIL_INVALID,
    guardian_handoff.TOO_MANY_CODES,
    guardian_handoff.OTP_WRONG,
    guardian_handoff.OTP_EXPIRED,
    guardian_handoff.WRONG_CODES_FROM_NETWORK,
]


@pytest.fixture(scope="module")
def pages(key_files: dict[str, str]) -> jinja2.Environment:
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


def rendered(pages: jinja2.Environment, locale: str) -> Iterator[str]:
    email = emails.render_handoff_code_email(
        locale=locale,
        operator_name="Astra Tutoring",
        code="493027",
        expires_at=WHEN,
        child_hint="mia_2015",
        timezone="Europe/Ljubljana",
    )
    yield from (email.subject, email.text, email.html)
    language = translator(locale)
    errors = [language.gettext(message) for message in ALL_MESSAGES]
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
        errors=[],
        selected=set(),
        attested=False,
        via_handoff=True,
    )
    for shown in ([], errors):
        yield render(
            "handoff_code",
            form_action="/guardian/code",
            errors=shown,
            field_errors={"code": shown[:1]} if shown else {},
            code="",
        )
        yield render(
            "handoff_address",
            form_action="/guardian/code/abc",
            errors=shown,
            field_errors={"email": shown[:1]} if shown else {},
            email="",
        )
        yield render(
            "handoff_confirm",
            form_action="/guardian/code/abc/confirm",
            address_url="/guardian/code/abc",
            masked_address="p***@e***.com",
            expires_at=format_datetime(WHEN, locale, "Europe/Ljubljana"),
            errors=shown,
            field_errors={"otp": shown[:1]} if shown else {},
        )


@pytest.mark.parametrize("locale", LOCALES)
def test_no_placeholder_reaches_the_parent(pages: jinja2.Environment, locale: str) -> None:
    documents = list(rendered(pages, locale))
    assert len(documents) == 3 + 1 + 6
    for document in documents:
        assert not PLACEHOLDER_LEFT.findall(html.unescape(document))
    subject, text, _ = documents[:3]
    assert "Astra Tutoring" in subject
    assert "493027" in text
    assert "mia_2015" in text


@pytest.mark.parametrize("locale", [locale for locale in LOCALES if locale != DEFAULT_LOCALE])
def test_no_english_is_left(pages: jinja2.Environment, locale: str) -> None:
    english = english_only_texts(locale)
    assert english
    for document in rendered(pages, locale):
        text = readable(document, names=("Astra Tutoring",))
        assert [source for source in english if source in text] == []
    # the sentence for a child who typed their own address is there, in the language
    source = (
        "If you are the child: please do not enter the code. A parent or guardian must do "
        "this step themselves, with their own email address."
    )
    warning = translator(locale).gettext(source)
    assert warning != source
    email = emails.render_handoff_code_email(
        locale=locale, operator_name="Astra Tutoring", code="493027", expires_at=WHEN
    )
    assert warning in email.text
