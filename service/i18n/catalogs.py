"""The shipped languages: English, the source language, and one compiled catalog per translation.

Messages are marked by their English text (gettext msgids); a translation is
``locale/<language>/LC_MESSAGES/messages.po`` with its compiled ``messages.mo`` beside it.
A language is shipped when its compiled catalog is there, so adding one needs no code change.
"""

from __future__ import annotations

import functools
import gettext
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
DEFAULT_LOCALE = "en"


def shipped_locales(directory: Path = LOCALE_DIR) -> tuple[str, ...]:
    """English first, then every language with a compiled catalog in ``directory``."""
    compiled = sorted(path.parents[1].name for path in directory.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))
    return (DEFAULT_LOCALE, *(name for name in compiled if name != DEFAULT_LOCALE))


LOCALES = shipped_locales()


def negotiate_locale(value: str | None) -> str:
    """The shipped language for a tag ("sl-SI", "SL", "sl_SI") or an Accept-Language header.

    Anything unknown, empty or None gives English.
    """
    if not value:
        return DEFAULT_LOCALE
    candidates: list[tuple[float, int, str]] = []
    for index, part in enumerate(value.split(",")):
        tag, *params = part.split(";")
        quality = 1.0
        for param in params:
            name, _, raw = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(raw)
                except ValueError:
                    quality = 0.0
        shipped = _shipped_locale(tag.strip())
        if quality > 0 and shipped is not None:
            candidates.append((-quality, index, shipped))
    if not candidates:
        return DEFAULT_LOCALE
    return min(candidates)[2]


def shipped_locale(tag: str) -> str | None:
    """The shipped language for one language tag ("sl-SI", "SL", "sl_SI"), or None: unlike
    ``negotiate_locale``, no fallback to English."""
    return _shipped_locale(tag.strip()) if tag.strip() else None


def _shipped_locale(tag: str) -> str | None:
    """The catalog for a language tag: its region's (``pt-BR`` → ``pt_BR``), else its language's."""
    parts = tag.replace("_", "-").split("-")
    language = parts[0].lower()
    if len(parts) > 1 and f"{language}_{parts[1].upper()}" in LOCALES:
        return f"{language}_{parts[1].upper()}"
    return language if language in LOCALES else None


@functools.cache
def translations(locale: str) -> gettext.NullTranslations:
    """The compiled catalog of a shipped language; English, the source, translates to itself.

    ``locale`` must be shipped (negotiate first): the cache holds one entry per language.
    """
    if locale not in LOCALES:
        raise LookupError(f"no translation catalog for {locale!r}")
    if locale == DEFAULT_LOCALE:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[locale])
