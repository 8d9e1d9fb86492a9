"""The long-lived collaborators every request and worker pass share, built once from settings."""

from __future__ import annotations

from service.clock import Clock, SystemClock
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

    def link(self, path: str) -> str:
        return f"{self.settings.public_url}{path}"
