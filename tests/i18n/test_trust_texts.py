"""The reminder email, the child hint and the operator's contact on error pages, rendered in
every shipped language: translated, no English left, no placeholder left."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest

from service.delivery import emails
from service.i18n import DEFAULT_LOCALE, LOCALES, translator

WHEN = datetime(2027, 12, 3, 13, 0, tzinfo=UTC)
NEW_TEXTS = [
    "Reminder from %(operator)s: your consent is needed for your child's account",
    "We recently asked for your consent so that your child can use %(operator)s, and we have "
    "not received your answer yet. This is a reminder.",
    "This request concerns the account “%(account)s”.",
    "Open the link below to read what we ask your consent for and to give or refuse it:",
    "Questions? Contact %(operator)s:",
]
PLACEHOLDER_LEFT = re.compile(r"%\(\w+\)s|\{\{|\}\}")


def reminder(locale: str) -> emails.RenderedEmail:
    return emails.render_reminder_email(
        locale=locale,
        operator_name="Astra Tutoring",
        review_url="https://consent.example.test/guardian/abc",
        expires_at=WHEN,
        child_hint="mia_2016",
        timezone="Europe/Ljubljana",
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_the_reminder_is_whole_in_every_language(locale: str) -> None:
    email = reminder(locale)
    language = translator(locale)
    for document in (email.subject, email.text, html.unescape(email.html)):
        assert not PLACEHOLDER_LEFT.findall(document)
    expected = language.gettext(NEW_TEXTS[2], account="mia_2016")
    assert expected in email.text
    assert expected in html.unescape(email.html)
    assert "https://consent.example.test/guardian/abc" in email.text
    if locale == "sl":
        assert email.subject == (
            "Astra Tutoring \u2013 opomnik: za račun vašega otroka potrebujemo vaše soglasje"
        )
        assert "3. decembra 2027 ob 14:00 (srednjeevropski standardni čas)" in email.text
    if locale == "en":
        assert "3 December 2027, 14:00 (Central European Standard Time)" in email.text


@pytest.mark.parametrize("locale", [locale for locale in LOCALES if locale != DEFAULT_LOCALE])
def test_the_new_texts_are_translated(locale: str) -> None:
    language = translator(locale)
    email = reminder(locale)
    rendered = " ".join(html.unescape(f"{email.subject} {email.text} {email.html}").split())
    values = {"operator": "Astra Tutoring", "account": "mia_2016"}
    for source in NEW_TEXTS:
        assert language.gettext(source, **values) != source % values, source
        english_words = re.split(r"%\(\w+\)s", source)[0].strip(" .,:")
        if len(english_words.split()) >= 3:
            assert english_words not in rendered
