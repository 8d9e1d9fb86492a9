"""The long-lived collaborators every request and worker pass share, built once from settings."""

from __future__ import annotations

from service.clock import Clock, SystemClock
from service.consent.notice import Notice, build_notice
from service.consent.purposes import Catalogue, load_catalogue
from service.security.personal_data import DataProtector
from service.security.tokens import ConsentTokenSigner
from service.settings import Settings


class Runtime:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.protector = DataProtector(settings.data_key)
        self.signer = ConsentTokenSigner(
            settings.signing_key(), issuer=settings.token_issuer, audience=settings.token_audience
        )
        self.catalogue: Catalogue = load_catalogue(settings.purposes_file)
        self._notices: dict[str, Notice] = {}

    def notice(self, locale: str) -> Notice:
        """The current notice of a language (its text is fixed for the life of the process)."""
        if locale not in self._notices:
            self._notices[locale] = build_notice(self.settings, self.catalogue, locale)
        return self._notices[locale]

    def link(self, path: str) -> str:
        return f"{self.settings.public_url}{path}"
