"""Looking for text in rendered emails and pages the way Jinja escapes it."""

from __future__ import annotations

import markupsafe

from service.consent.purposes import Purpose
from service.i18n import translator


def esc(value: str) -> str:
    """Escaped as Jinja escapes (markupsafe: ' becomes &#39;, not &#x27;)."""
    return str(markupsafe.escape(value))


def html_contains(document: str, value: str) -> bool:
    return esc(value) in document


def category_names(purpose: Purpose, locale: str) -> list[str]:
    """The localized names of the data categories ``purpose`` uses."""
    t = translator(locale)
    return [t.data_category(category) for category in purpose.data_categories]
