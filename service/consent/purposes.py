"""The operator's catalogue of purposes: shipped default, overridable by CONSENT_PURPOSES_FILE."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import msgspec

from service.i18n import DEFAULT_LOCALE
from service.settings import ConfigError

DEFAULT_CATALOGUE = Path(__file__).parents[1] / "data" / "purposes.json"
_PURPOSE_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")


class Recipient(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A third party a purpose discloses data to, and why, per language."""

    name: dict[str, str]
    why: dict[str, str]

    def localized_name(self, locale: str) -> str:
        return self.name.get(locale) or self.name[DEFAULT_LOCALE]

    def localized_why(self, locale: str) -> str:
        return self.why.get(locale) or self.why[DEFAULT_LOCALE]


class Purpose(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    required: bool
    data_categories: list[str]
    retention_days: int
    title: dict[str, str]
    description: dict[str, str]
    recipients: list[Recipient] = []

    def localized_title(self, locale: str) -> str:
        return self.title.get(locale) or self.title[DEFAULT_LOCALE]

    def localized_description(self, locale: str) -> str:
        return self.description.get(locale) or self.description[DEFAULT_LOCALE]


class Catalogue(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    notice_version: str
    purposes: list[Purpose]

    def get(self, purpose_id: str) -> Purpose | None:
        return next((p for p in self.purposes if p.id == purpose_id), None)

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.purposes]

    @property
    def required_ids(self) -> list[str]:
        return [p.id for p in self.purposes if p.required]

    def among(self, purpose_ids: Sequence[str]) -> list[Purpose]:
        """The catalogue's purposes among ``purpose_ids``, in catalogue order."""
        return [p for p in self.purposes if p.id in purpose_ids]

    def ordered(self, purpose_ids: list[str] | set[str]) -> list[str]:
        """The given ids in catalogue order, so stored lists are canonical."""
        wanted = set(purpose_ids)
        return [p.id for p in self.purposes if p.id in wanted]


def load_catalogue(path: str | None) -> Catalogue:
    source = Path(path) if path else DEFAULT_CATALOGUE
    try:
        catalogue = msgspec.json.decode(source.read_bytes(), type=Catalogue)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"CONSENT_PURPOSES_FILE: {source.name}: {exc}") from None
    _validate(catalogue)
    return catalogue


def _validate(catalogue: Catalogue) -> None:
    ids = catalogue.ids
    if not ids:
        raise ConfigError("CONSENT_PURPOSES_FILE: the catalogue lists no purposes")
    if len(set(ids)) != len(ids):
        raise ConfigError("CONSENT_PURPOSES_FILE: purpose ids must be unique")
    if not catalogue.required_ids:
        raise ConfigError("CONSENT_PURPOSES_FILE: at least one purpose must be required")
    for purpose in catalogue.purposes:
        if not _PURPOSE_ID.fullmatch(purpose.id):
            raise ConfigError(f"CONSENT_PURPOSES_FILE: invalid purpose id {purpose.id!r}")
        for field in ("title", "description"):
            if DEFAULT_LOCALE not in getattr(purpose, field):
                raise ConfigError(
                    f"CONSENT_PURPOSES_FILE: purpose {purpose.id} lacks an English {field}"
                )
        for recipient in purpose.recipients:
            if DEFAULT_LOCALE not in recipient.name or DEFAULT_LOCALE not in recipient.why:
                raise ConfigError(
                    f"CONSENT_PURPOSES_FILE: a recipient of purpose {purpose.id} lacks an "
                    "English name or why"
                )
