"""Languages of the guardian-facing texts (emails and pages): gettext catalogs, CLDR formats.

English is the source language: code and templates mark messages by their English text, and
each translation is a catalog in ``locale/<language>/LC_MESSAGES/messages.po`` (compiled to
``messages.mo`` by ``make translations``). The shipped languages are the compiled catalogs
found there. Slovenian texts address the guardian formally ("vi").
"""

from service.i18n.catalogs import (
    DEFAULT_LOCALE,
    LOCALE_DIR,
    LOCALES,
    negotiate_locale,
    shipped_locale,
)
from service.i18n.formatting import format_date, format_datetime
from service.i18n.templates import install_translations
from service.i18n.translator import N_, Translator, translator

__all__ = [
    "DEFAULT_LOCALE",
    "LOCALES",
    "LOCALE_DIR",
    "N_",
    "Translator",
    "format_date",
    "format_datetime",
    "install_translations",
    "negotiate_locale",
    "shipped_locale",
    "translator",
]
