"""What a guardian reads about why support staff revoked a consent.

Staff give an internal ``reason`` (and an optional ``note``) for the audit trail; neither is
ever sent. The guardian reads either one of the preset reasons below, translated into the
request's language, or a text staff wrote for them (shown as written), or, when staff gave
neither, a neutral sentence.

On the staff API a preset is named ``preset:<id>``; any other text is written for the guardian.
A text that starts with ``preset:`` but names no preset is refused, so a typo in an id is never
mailed to a family.
"""

from __future__ import annotations

import msgspec

from service.consent.errors import InvalidInput
from service.i18n import N_

PRESET_PREFIX = "preset:"

# id -> what the guardian reads (a gettext message, translated into the request's language)
PRESET_REASONS: dict[str, str] = {
    "guardian_request": N_("You asked us to end this consent."),
    "parental_responsibility": N_(
        "We could not confirm that the person who gave this consent holds parental "
        "responsibility for the child."
    ),
    "account_closed": N_("Your child's account has been closed."),
    "duplicate": N_("This consent duplicated another consent given for your child."),
    "details_incorrect": N_(
        "The details in the consent request were not correct. The service may ask you again "
        "with the correct details."
    ),
}


class GuardianReason(msgspec.Struct, frozen=True, kw_only=True):
    """Exactly one of ``preset`` (an id of ``PRESET_REASONS``) and ``text`` is set."""

    preset: str | None = None
    text: str | None = None

    @property
    def wire(self) -> str:
        """As the staff API takes it, and as the audit trail keeps it."""
        return f"{PRESET_PREFIX}{self.preset}" if self.preset else (self.text or "")

    @property
    def message(self) -> str | None:
        """The gettext message of a preset, for the email to translate."""
        return PRESET_REASONS[self.preset] if self.preset else None


def parse_guardian_reason(value: str | None) -> GuardianReason | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.startswith(PRESET_PREFIX):
        preset = value.removeprefix(PRESET_PREFIX)
        if preset not in PRESET_REASONS:
            raise InvalidInput(
                f"Unknown preset reason {preset!r}; the presets are "
                + ", ".join(f"preset:{p}" for p in PRESET_REASONS)
                + "."
            )
        return GuardianReason(preset=preset)
    return GuardianReason(text=value)
