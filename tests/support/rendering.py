"""Looking for text in rendered emails and pages the way Jinja escapes it."""

from __future__ import annotations

from typing import Any

import markupsafe

from service.consent.notice import Notice, build_notice
from service.consent.purposes import Purpose, load_catalogue
from service.i18n import translator
from service.settings import Settings, SmtpConfig


def esc(value: str) -> str:
    """Escaped as Jinja escapes (markupsafe: ' becomes &#39;, not &#x27;)."""
    return str(markupsafe.escape(value))


def html_contains(document: str, value: str) -> bool:
    return esc(value) in document


def category_names(purpose: Purpose, locale: str) -> list[str]:
    """The localized names of the data categories ``purpose`` uses."""
    t = translator(locale)
    return [t.data_category(category) for category in purpose.data_categories]


def notice_for(
    locale: str,
    *,
    operator_name: str = "Astra Tutoring",
    privacy_notice_url: str = "https://tutor.example.test/privacy",
    **operator: Any,
) -> Notice:
    """The direct notice of the shipped catalogue, for rendering emails and pages alone."""
    settings = Settings(
        database_url="postgresql://unused",
        smtp=SmtpConfig(host="localhost", port=25),
        mail_from="consent@tutoring.test",
        public_url="https://consent.tutoring.test",
        signing_key_pem=b"",
        data_key=b"",
        operator_name=operator_name,
        privacy_notice_url=privacy_notice_url,
        **operator,
    )
    return build_notice(settings, load_catalogue(None), locale)
