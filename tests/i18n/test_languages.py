"""Each shipped language writes dates and plurals its own way, the operator's purposes speak
every shipped language, and so does the written retention policy."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from service.consent.purposes import load_catalogue
from service.consent.retention import retention_policy
from service.consent.retention_document import policy_document, render_markdown
from service.i18n import DEFAULT_LOCALE, LOCALES, format_date, format_datetime, translator
from service.settings import load_settings
from tests.support.untranslated import english_only_texts, english_purpose_texts, readable

CATALOGUE = load_catalogue(None)
RETRY = ("Please try again in %(num)d minute.", "Please try again in %(num)d minutes.")

# (locale, 2 December 2027, 1 March 2027, 30 November 2026 14:05 UTC)
DATES = [
    (
        "en",
        "2 December 2027",
        "1 March 2027",
        "30 November 2026, 15:05 (Central European Standard Time)",
    ),
    (
        "sl",
        "2. decembra 2027",
        "1. marca 2027",
        "30. novembra 2026 ob 15:05 (srednjeevropski standardni čas)",
    ),
    (
        "de",
        "2. Dezember 2027",
        "1. März 2027",
        "30. November 2026, 15:05 Uhr (Mitteleuropäische Normalzeit)",
    ),
    # Croatian declines the month in a date (genitive) and ends the year with a full stop
    (
        "hr",
        "2. prosinca 2027.",
        "1. ožujka 2027.",
        "30. studenoga 2026. u 15:05 (srednjoeuropsko standardno vrijeme)",
    ),
    (
        "it",
        "2 dicembre 2027",
        "1 marzo 2027",
        "30 novembre 2026, ore 15:05 (ora standard dell\u2019Europa centrale)",
    ),
    (
        "hu",
        "2027. december 2.",
        "2027. március 1.",
        "2026. november 30. 15:05 (közép-európai téli idő)",
    ),
    # French writes the first of the month as an ordinal
    (
        "fr",
        "2 décembre 2027",
        "1er mars 2027",
        "30 novembre 2026 à 15:05 (heure normale d\u2019Europe centrale)",
    ),
    (
        "es",
        "2 de diciembre de 2027",
        "1 de marzo de 2027",
        "30 de noviembre de 2026, 15:05 (hora estándar de Europa central)",
    ),
]


def test_every_shipped_language_has_its_dates_checked() -> None:
    assert sorted(locale for locale, *_ in DATES) == sorted(LOCALES)


@pytest.mark.parametrize(("locale", "december", "march_first", "moment"), DATES)
def test_dates_read_the_way_the_language_writes_them(
    locale: str, december: str, march_first: str, moment: str
) -> None:
    assert format_date(date(2027, 12, 2), locale) == december
    assert format_date(date(2027, 3, 1), locale) == march_first
    # in the child's country's zone, named (Slovenia's here)
    when = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)
    assert format_datetime(when, locale, "Europe/Ljubljana") == moment


def test_the_french_ordinal_is_only_for_the_first_and_leaves_quoted_text_alone() -> None:
    assert format_datetime(datetime(2026, 11, 1, 9, 5, tzinfo=UTC), "fr") == (
        "1er novembre 2026 à 09:05 (temps universel coordonné)"
    )
    assert format_date(date(2027, 3, 11), "fr") == "11 mars 2027"
    assert format_date(date(2027, 3, 1), "es") == "1 de marzo de 2027"  # 'de' stays as it is


@pytest.mark.parametrize(
    ("locale", "counts"),
    [
        ("hr", {1: "minutu", 2: "minute", 4: "minute", 5: "minuta", 11: "minuta", 21: "minutu"}),
        ("hu", {1: "perc", 5: "perc"}),
        ("de", {1: "Minute", 5: "Minuten"}),
        ("fr", {1: "minute", 2: "minutes"}),
        ("it", {1: "minuto", 2: "minuti"}),
        ("es", {1: "minuto", 2: "minutos"}),
    ],
)
def test_plural_forms_follow_the_language(locale: str, counts: dict[int, str]) -> None:
    language = translator(locale)
    for count, word in counts.items():
        text = language.ngettext(*RETRY, count)
        assert f"{count} {word}" in text, text


@pytest.mark.parametrize("locale", LOCALES)
def test_every_purpose_speaks_every_shipped_language(locale: str) -> None:
    for purpose in CATALOGUE.purposes:
        assert purpose.title.get(locale, "").strip(), (purpose.id, locale)
        assert purpose.description.get(locale, "").strip(), (purpose.id, locale)
        for recipient in purpose.recipients:
            assert recipient.name.get(locale, "").strip(), (purpose.id, locale)
            assert recipient.why.get(locale, "").strip(), (purpose.id, locale)


@pytest.mark.parametrize("locale", [locale for locale in LOCALES if locale != DEFAULT_LOCALE])
def test_the_retention_policy_has_no_english_left(key_files: dict[str, str], locale: str) -> None:
    settings = load_settings(
        {
            "CONSENT_DATABASE_URL": "postgresql://consent@127.0.0.1:1/consent",
            "CONSENT_SMTP_URL": "smtp://127.0.0.1:1",
            "CONSENT_MAIL_FROM": "consent@tutoring.example",
            "CONSENT_PUBLIC_URL": "http://consent.test",
            "CONSENT_SIGNING_KEY_FILE": key_files["signing"],
            "CONSENT_DATA_KEY": key_files["data_key"],
        }
    )
    policy = retention_policy(settings, CATALOGUE)
    text = readable(
        render_markdown(policy_document(policy, locale=locale, operator_name="Astra Tutoring")),
        names=("Astra Tutoring",),
    )
    english = english_only_texts(locale) | english_purpose_texts(CATALOGUE, locale)
    assert [source for source in sorted(english) if source in text] == []
