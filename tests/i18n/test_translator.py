"""Locales and translations: negotiating a locale, falling back to English, Slovenian plurals,
and dates written the way each language writes them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from service.i18n import format_date, format_datetime, negotiate_locale, translator


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sl", "sl"),
        ("sl-SI", "sl"),
        ("SL", "sl"),
        ("sl_SI", "sl"),
        ("en-US", "en"),
        ("ja-JP", "en"),
        ("de-DE", "de"),
        ("hr-HR", "hr"),
        ("", "en"),
        (None, "en"),
        ("ja-JP,sl;q=0.8,en;q=0.5", "sl"),
        ("fr-FR,sl;q=0.8,en;q=0.5", "fr"),
        ("en;q=0.4, sl-SI;q=0.9", "sl"),
        ("*", "en"),
    ],
)
def test_negotiate_locale(value: str | None, expected: str) -> None:
    assert negotiate_locale(value) == expected


def test_translator_falls_back_to_english_then_key() -> None:
    assert translator("ja")("Give consent") == "Give consent"
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
    utc = "14:05 (Coordinated Universal Time)"
    assert format_datetime(moment, "en") == f"30 November 2026, {utc}"
    assert format_datetime(moment, "sl") == (
        "30. novembra 2026 ob 14:05 (univerzalni koordinirani čas)"
    )
    assert format_datetime(moment, "xx") == f"30 November 2026, {utc}"
    from zoneinfo import ZoneInfo

    # the zone shown is the one asked for, whatever zone the moment carries
    ljubljana = moment.astimezone(ZoneInfo("Europe/Ljubljana"))
    assert format_datetime(ljubljana, "en") == f"30 November 2026, {utc}"


def test_a_regional_catalog_is_chosen_before_its_language(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.i18n import catalogs

    monkeypatch.setattr(catalogs, "LOCALES", ("en", "sl", "pt", "pt_BR"))
    assert negotiate_locale("pt-BR") == "pt_BR"
    assert negotiate_locale("pt_br") == "pt_BR"
    assert negotiate_locale("pt-PT") == "pt"
    assert negotiate_locale("sl-SI") == "sl"


@pytest.mark.parametrize(
    ("day", "slovenian"),
    [
        (date(2027, 1, 2), "2. januarja 2027"),
        (date(2027, 3, 15), "15. marca 2027"),
        (date(2027, 12, 2), "2. decembra 2027"),
    ],
)
def test_slovenian_dates_decline_the_month(day: date, slovenian: str) -> None:
    assert format_date(day, "sl") == slovenian
    assert format_datetime(datetime.combine(day, time(9, 30), tzinfo=UTC), "sl") == (
        f"{slovenian} ob 09:30 (univerzalni koordinirani čas)"
    )
    assert format_date(day, "en") == f"{day.day} {day.strftime('%B')} {day.year}"
