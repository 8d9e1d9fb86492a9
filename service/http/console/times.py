"""Times on console pages: in the operator's zone (``CONSENT_OPERATOR_COUNTRY``), named, in
the staff member's language."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from litestar import Request

from service.consent import policy
from service.http.console.rendering import locale_of
from service.i18n import format_datetime
from service.settings import Settings


def console_timezone(settings: Settings) -> str:
    return policy.display_timezone(settings.operator_country)


def when_for(request: Request[Any, Any, Any]) -> Callable[[datetime | None], str]:
    """``when(moment)``: the moment as a staff member reads it; empty for None."""
    settings: Settings = request.app.state.runtime.settings
    zone = console_timezone(settings)
    locale = locale_of(request)

    def when(moment: datetime | None) -> str:
        return format_datetime(moment, locale, zone) if moment else ""

    return when
