"""Every form problem a guardian can meet has a sentence and a field it is shown next to, so no
new kind of problem can reach a page as a raw key or crash its rendering."""

from __future__ import annotations

import pytest

from service.consent.errors import FormError
from service.http.guardian_pages import FIELD_OF_ERROR, FORM_ERRORS, form_errors
from service.i18n import LOCALES


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("error", list(FormError))
def test_every_form_error_is_a_sentence_by_a_field(error: FormError, locale: str) -> None:
    assert error in FORM_ERRORS
    assert error in FIELD_OF_ERROR
    rendered = form_errors([error], locale)
    assert rendered["errors"], rendered
    for message in rendered["errors"]:
        assert "error." not in message
        assert message.strip().endswith((".", "!", "?"))
