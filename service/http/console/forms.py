"""What the console's forms share: the free-text rule and ids read from a form field."""

from __future__ import annotations

import re
import uuid

from service.http.patterns import TEXT_PATTERN

# Free text staff write (kept in the audit trail and exports): no control characters.
TEXT = re.compile(TEXT_PATTERN)


def form_uuid(raw: object) -> uuid.UUID | None:
    """The id a form field names, or None when it is empty or not an id."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        return None
