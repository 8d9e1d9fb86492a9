"""Dates as the guardian reads them, formatted with Babel from the CLDR data of the language."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date as cldr_format_date
from babel.dates import format_datetime as cldr_format_datetime

from service.i18n.translator import N_, translator

# TRANSLATORS: the CLDR date pattern of the dates and times in emails and on pages, in the
# time zone of the child's country (symbols:
# unicode.org/reports/tr35/tr35-dates.html#Date_Field_Symbol_Table). MMMM is the name of the
# month in your language; zzzz the zone's name in your language ("Central European Standard
# Time"); text in single quotes is copied as it is.
DATETIME_PATTERN = N_("d MMMM y, HH:mm (zzzz)")
# TRANSLATORS: the CLDR pattern of a calendar day (a birthday) in emails, without a time.
DATE_PATTERN = N_("d MMMM y")

# Month names as they stand inside a date where the language declines them and CLDR gives the
# nominative: Slovenian writes "2. decembra 2027" (genitive; Slovenski pravopis, 2001, on
# writing dates), while CLDR's format names read "2. december 2027".
_MONTHS_IN_A_DATE: dict[str, tuple[str, ...]] = {
    "sl": (
        "januarja", "februarja", "marca", "aprila", "maja", "junija",
        "julija", "avgusta", "septembra", "oktobra", "novembra", "decembra",
    ),
}  # fmt: skip

# The first day of a month where the language writes it as an ordinal and CLDR has no field for
# it: French writes "1er décembre 2027" but "2 décembre 2027" (Imprimerie nationale, Lexique des
# règles typographiques).
_FIRST_OF_THE_MONTH: dict[str, str] = {"fr": "er"}
# A pattern's quoted literal text ('UTC', 'de'), which must stay as it is.
_QUOTED = re.compile(r"('(?:[^']|'')*')")
_DAY_OF_MONTH = re.compile(r"(?<!d)d(?!d)")

# Languages that write a zone's name in lower case inside a sentence, where CLDR's names start
# with a capital: Slovenian adjectives ("srednjeevropski čas") are not capitalised, and Italian
# writes "(ora standard dell'Europa centrale)" after a time.
_ZONE_NAMES_IN_LOWER_CASE = frozenset({"sl", "it"})


def _in_a_date(pattern: str, locale: str, day: date) -> str:
    """``pattern`` with the day and month written the way ``locale`` writes them in a date."""
    months = _MONTHS_IN_A_DATE.get(locale)
    if months is not None and "MMMM" in pattern:
        pattern = pattern.replace("MMMM", f"'{months[day.month - 1]}'", 1)
    ordinal = _FIRST_OF_THE_MONTH.get(locale)
    if ordinal is not None and day.day == 1:
        parts = _QUOTED.split(pattern)
        parts[::2] = [_DAY_OF_MONTH.sub(f"d'{ordinal}'", part, count=1) for part in parts[::2]]
        pattern = "".join(parts)
    return pattern


def format_datetime(moment: datetime, locale: str | None, timezone: str = "UTC") -> str:
    """A readable date and time in ``timezone`` (an IANA name), the zone named: "30 November
    2026, 15:05 (Central European Standard Time)" in English for Europe/Ljubljana.

    A naive datetime is taken to be UTC.
    """
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    zone = ZoneInfo(timezone)
    local = utc.astimezone(zone)
    language = translator(locale)
    pattern = _in_a_date(language.gettext(DATETIME_PATTERN), language.locale, local.date())
    formatted = cldr_format_datetime(utc, pattern, tzinfo=zone, locale=language.locale)
    if language.locale in _ZONE_NAMES_IN_LOWER_CASE:
        name = cldr_format_datetime(utc, "zzzz", tzinfo=zone, locale=language.locale)
        formatted = formatted.replace(name, name[:1].lower() + name[1:])
    return formatted


def format_date(day: date, locale: str | None) -> str:
    """A readable calendar day: "1 April 2030" in English."""
    language = translator(locale)
    pattern = _in_a_date(language.gettext(DATE_PATTERN), language.locale, day)
    return cldr_format_date(day, pattern, locale=language.locale)
