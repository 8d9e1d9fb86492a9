"""Staff tokens: JWTs from the operator's identity provider, checked per role.

Only asymmetric algorithms are accepted, so a leaked JWKS (public) can never mint tokens.
Keys come from a JWKS file or URL, cached and re-read when a token names an unknown ``kid``.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import msgspec

from service.security.tokens import public_jwk
from service.settings import ConfigError, DevTokenConfig, Settings, load_ed25519_private_key

ALGORITHMS = ["EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256"]
ROLES = ("support", "admin")
REFRESH_AT_MOST_EVERY_SECONDS = 30.0
CACHE_SECONDS = 3600.0
DEV_TOKEN_LIFETIME = timedelta(hours=8)


class StaffPrincipal(msgspec.Struct, frozen=True, kw_only=True):
    sub: str
    roles: frozenset[str]


class StaffAuthError(Exception):
    pass


class JwksSource:
    def __init__(self, location: str) -> None:
        self._location = location
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def _fetch(self) -> dict[str, Any]:
        if self._location.startswith(("https://", "http://")):
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(self._location)
                response.raise_for_status()
                document: dict[str, Any] = response.json()
                return document
        text = await asyncio.to_thread(Path(self._location).read_text)
        loaded: dict[str, Any] = json.loads(text)
        return loaded

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._loaded_at < REFRESH_AT_MOST_EVERY_SECONDS and self._keys:
                return
            try:
                document = await self._fetch()
                keys = jwt.PyJWKSet.from_dict(document).keys
            except (OSError, ValueError, httpx.HTTPError, jwt.PyJWKSetError) as exc:
                raise StaffAuthError(f"staff keys unavailable ({type(exc).__name__})") from exc
            self._keys = {key.key_id: key for key in keys if key.key_id}
            self._loaded_at = time.monotonic()

    async def key(self, kid: str) -> jwt.PyJWK:
        stale = time.monotonic() - self._loaded_at > CACHE_SECONDS
        if stale or kid not in self._keys:
            await self._refresh()
        found = self._keys.get(kid)
        if found is None:
            raise StaffAuthError("the token is signed by an unknown key")
        return found


class StaffVerifier:
    def __init__(self, issuer: str, audience: str, jwks: str) -> None:
        self._issuer = issuer
        self._audience = audience
        self._source = JwksSource(jwks)

    async def verify(self, token: str) -> StaffPrincipal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise StaffAuthError("not a JWT") from None
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") not in ALGORITHMS:
            raise StaffAuthError("the token needs a kid and an asymmetric algorithm")
        key = await self._source.key(kid)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=30,
            )
        except jwt.ExpiredSignatureError:
            raise StaffAuthError("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise StaffAuthError(f"invalid token ({type(exc).__name__})") from None
        roles = claims.get("roles", [])
        if isinstance(roles, str):
            roles = roles.split()
        if not isinstance(roles, list):
            roles = []
        return StaffPrincipal(sub=str(claims["sub"]), roles=frozenset(map(str, roles)))


def verifier_from_settings(settings: Settings) -> StaffVerifier | None:
    if settings.staff_issuer and settings.staff_audience and settings.staff_jwks:
        return StaffVerifier(settings.staff_issuer, settings.staff_audience, settings.staff_jwks)
    return None


def mint_dev_token(settings: DevTokenConfig | Settings, *, sub: str, roles: list[str]) -> str:
    """A staff JWT signed with the development key (``staff-token``); refused without one."""
    if not settings.dev_staff_key_file:
        raise ConfigError(
            "CONSENT_DEV_STAFF_KEY_FILE: not set; staff-token only works with a development key"
        )
    if not (settings.staff_issuer and settings.staff_audience):
        raise ConfigError("CONSENT_STAFF_ISSUER: staff-token needs the issuer and audience set")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ConfigError(f"--role: unknown role(s) {unknown}; choose from {', '.join(ROLES)}")
    key_file = Path(settings.dev_staff_key_file)
    if not key_file.is_file():
        raise ConfigError(f"CONSENT_DEV_STAFF_KEY_FILE: no such file: {key_file}")
    key = load_ed25519_private_key(key_file.read_bytes(), "CONSENT_DEV_STAFF_KEY_FILE")
    now = datetime.now(UTC)
    claims = {
        "iss": settings.staff_issuer,
        "aud": settings.staff_audience,
        "sub": sub,
        "roles": roles,
        "iat": int(now.timestamp()),
        "exp": int((now + DEV_TOKEN_LIFETIME).timestamp()),
    }
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": public_jwk(key)["kid"]})


def jwks_document(private_pem: bytes) -> dict[str, Any]:
    key = load_ed25519_private_key(private_pem, "CONSENT_DEV_STAFF_KEY_FILE")
    return {"keys": [public_jwk(key)]}
