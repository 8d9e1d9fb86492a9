"""A label's colon follows its language's typography: French puts a no-break space before it
(so "Données utilisées :" never breaks before the colon), the other languages none."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.consent.purposes import load_catalogue
from service.delivery import emails
from service.i18n import LOCALES, translator
from tests.support.rendering import notice_for

CATALOGUE = load_catalogue(None)
WHEN = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)


def request_email_text(locale: str) -> str:
    rendered = emails.render_request_email(
        locale=locale,
        notice=notice_for(locale),
        review_url="https://consent.example.test/guardian/abc",
        expires_at=WHEN,
        purpose_ids=CATALOGUE.ids,
    )
    return rendered.text + rendered.html


@pytest.mark.parametrize("locale", LOCALES)
def test_a_label_and_its_colon_are_written_as_the_language_writes_them(locale: str) -> None:
    label = translator(locale).gettext("Data used")
    text = request_email_text(locale)
    if locale == "fr":
        assert f"{label}\u00a0:" in text
        assert f"{label}:" not in text
        assert f"{label} :" not in text
    else:
        assert f"{label}:" in text
        assert f"{label}\u00a0:" not in text
