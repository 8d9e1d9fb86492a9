"""Dates as the guardian reads them, formatted with Babel from the CLDR data of the language."""

from __future__ import annotations

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


# Languages that write a zone's name in lower case inside a sentence, where CLDR's names start
# with a capital: Slovenian adjectives ("srednjeevropski čas") are not capitalised.
_ZONE_NAMES_IN_LOWER_CASE = frozenset({"sl"})


def _with_month_in_a_date(pattern: str, locale: str, month: int) -> str:
    """``pattern`` with its full month name written out where the language declines it."""
    months = _MONTHS_IN_A_DATE.get(locale)
    if months is None or "MMMM" not in pattern:
        return pattern
    return pattern.replace("MMMM", f"'{months[month - 1]}'", 1)


def format_datetime(moment: datetime, locale: str | None, timezone: str = "UTC") -> str:
    """A readable date and time in ``timezone`` (an IANA name), the zone named: "30 November
    2026, 15:05 (Central European Standard Time)" in English for Europe/Ljubljana.

    A naive datetime is taken to be UTC.
    """
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    zone = ZoneInfo(timezone)
    local = utc.astimezone(zone)
    language = translator(locale)
    pattern = _with_month_in_a_date(
        language.gettext(DATETIME_PATTERN), language.locale, local.month
    )
    formatted = cldr_format_datetime(utc, pattern, tzinfo=zone, locale=language.locale)
    if language.locale in _ZONE_NAMES_IN_LOWER_CASE:
        name = cldr_format_datetime(utc, "zzzz", tzinfo=zone, locale=language.locale)
        formatted = formatted.replace(name, name[:1].lower() + name[1:])
    return formatted


def format_date(day: date, locale: str | None) -> str:
    """A readable calendar day: "1 April 2030" in English."""
    language = translator(locale)
    pattern = _with_month_in_a_date(language.gettext(DATE_PATTERN), language.locale, day.month)
    return cldr_format_date(day, pattern, locale=language.locale)
