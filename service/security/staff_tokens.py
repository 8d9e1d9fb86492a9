"""Staff tokens: JWTs from the operator's identity provider, checked per role.

Only asymmetric algorithms are accepted, so a leaked JWKS (public) can never mint tokens, and a
token is verified only with an algorithm its key allows (the JWK's ``alg``, or else the
algorithms of its key type): a header naming another algorithm is refused before any
cryptography runs. Keys come from a JWKS file or URL, cached and re-read when a token names an
unknown ``kid``. Fetching has an overall deadline and a byte cap, backs off after a failure and
keeps serving the last good keys meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from service.clock import Clock, SystemClock
from service.security.tokens import public_jwk
from service.settings import ConfigError, DevTokenConfig, Settings, load_ed25519_private_key

ALGORITHMS = ("EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256")
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256"})
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384"}
ROLES = ("support", "admin")
LEEWAY_SECONDS = 30
# A token longer than this is refused unread (a generous bound: an RS512 token with a few
# dozen claims is under 4 KiB).
MAX_TOKEN_CHARS = 16 * 1024
MAX_SUBJECT_CHARS = 255
# Unicode categories a `sub` may not contain: controls, format characters (bidi overrides),
# surrogates, and line or paragraph separators; `sub` ends up in the audit trail and logs.
_FORBIDDEN_SUBJECT_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# JWKS: re-read for an unknown kid at most this often, and re-read known keys this often.
REFRESH_AT_MOST_EVERY_SECONDS = 30.0
CACHE_SECONDS = 3600.0
# One fetch, all of it (connect, headers and body), ends within this; a longer answer is a
# failure, as is a document over the byte cap.
FETCH_DEADLINE_SECONDS = 5.0
MAX_JWKS_BYTES = 256 * 1024
# After a failed fetch, the next one waits: 10 s, doubling to at most 5 min.
BACKOFF_FIRST_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 300.0
DEV_TOKEN_LIFETIME = timedelta(hours=8)

logger = logging.getLogger("service.security.staff_tokens")


class StaffPrincipal(msgspec.Struct, frozen=True, kw_only=True):
    sub: str
    roles: frozenset[str]


class StaffAuthError(Exception):
    pass


class JwksError(Exception):
    """The JWKS could not be fetched or holds no usable key."""


class StaffKey(msgspec.Struct, frozen=True, kw_only=True):
    """A published public key and the algorithms a token signed by it may name."""

    kid: str
    key: Any
    algorithms: frozenset[str]


def _algorithms_for(key: object) -> frozenset[str]:
    if isinstance(key, Ed25519PublicKey):
        return frozenset({"EdDSA"})
    if isinstance(key, EllipticCurvePublicKey):
        algorithm = _EC_ALGORITHMS.get(key.curve.name)
        return frozenset({algorithm}) if algorithm else frozenset()
    if isinstance(key, RSAPublicKey):
        return _RSA_ALGORITHMS
    return frozenset()  # private keys, symmetric keys and other curves are not staff keys


def _staff_key(entry: object) -> StaffKey | None:
    """The usable signing key a JWKS entry describes, or None to skip it."""
    if not isinstance(entry, dict):
        return None
    kid = entry.get("kid")
    declared = entry.get("alg")
    if not isinstance(kid, str) or not kid or entry.get("use", "sig") != "sig":
        return None
    if declared is not None and not isinstance(declared, str):
        return None
    try:
        jwk = jwt.PyJWK(entry)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    algorithms = _algorithms_for(jwk.key)
    if declared is not None:
        algorithms &= {declared}
    if not algorithms:
        return None
    return StaffKey(kid=kid, key=jwk.key, algorithms=algorithms)


def parse_jwks(document: object) -> dict[str, StaffKey]:
    """The signing keys of a JWKS document by kid; JwksError when there is none."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("not a JWKS document")
    keys: dict[str, StaffKey] = {}
    for entry in document["keys"]:
        key = _staff_key(entry)
        if key is not None:
            keys.setdefault(key.kid, key)
    if not keys:
        raise JwksError("no usable signing key")
    return keys


class JwksSource:
    """The identity provider's keys, from a file or URL.

    Keys are re-read after ``CACHE_SECONDS``, or for an unknown kid at most every
    ``REFRESH_AT_MOST_EVERY_SECONDS``. A failed read keeps the last good keys and holds off the
    next read (back-off), so an unreachable provider costs one fetch per back-off period, not one
    per request. Times come from the service's clock.
    """

    def __init__(self, location: str, clock: Clock | None = None) -> None:
        self._location = location
        self._clock = clock or SystemClock()
        self._keys: dict[str, StaffKey] = {}
        self._loaded_at: datetime | None = None
        self._failures = 0
        self._retry_at: datetime | None = None
        self._last_error = ""
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> StaffKey:
        known = self._keys.get(kid)
        # While one request refreshes, others with a known kid go on with the cached key.
        if self._should_fetch(kid) and not (known is not None and self._lock.locked()):
            await self._refresh(kid)
        found = self._keys.get(kid)
        if found is not None:
            return found
        if self._failures:
            raise StaffAuthError(f"staff keys unavailable ({self._last_error})")
        raise StaffAuthError("the token is signed by an unknown key")

    def _should_fetch(self, kid: str) -> bool:
        now = self._clock.now()
        if self._retry_at is not None and now < self._retry_at:
            return False
        if self._loaded_at is None:
            return True
        age = (now - self._loaded_at).total_seconds()
        if age < 0:  # the clock went back: the age is unknown
            return True
        if kid in self._keys:
            return age >= CACHE_SECONDS
        return age >= REFRESH_AT_MOST_EVERY_SECONDS

    async def _refresh(self, kid: str) -> None:
        async with self._lock:
            if not self._should_fetch(kid):  # another request has just fetched (or failed)
                return
            try:
                keys = parse_jwks(await self._fetch())
            except JwksError as exc:
                self._failed(str(exc))
                return
            self._keys = keys
            self._loaded_at = self._clock.now()
            self._failures = 0
            self._retry_at = None
            self._last_error = ""

    def _failed(self, reason: str) -> None:
        self._failures += 1
        delay = min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** min(self._failures - 1, 16))
        self._retry_at = self._clock.now() + timedelta(seconds=delay)
        self._last_error = reason
        logger.warning(
            "staff JWKS not refreshed (%s); keeping %d known key(s), next attempt in %d s",
            reason,
            len(self._keys),
            delay,
        )

    async def _fetch(self) -> object:
        try:
            async with asyncio.timeout(FETCH_DEADLINE_SECONDS):
                if self._location.startswith(("https://", "http://")):
                    raw = await self._download()
                else:
                    raw = await asyncio.to_thread(self._read_file)
            return json.loads(raw)
        except TimeoutError:
            raise JwksError(f"no complete answer within {FETCH_DEADLINE_SECONDS:g} s") from None
        except httpx.HTTPStatusError as exc:
            raise JwksError(f"HTTP {exc.response.status_code}") from None
        except (OSError, httpx.HTTPError, httpx.InvalidURL) as exc:
            raise JwksError(type(exc).__name__) from None
        except (ValueError, RecursionError):
            raise JwksError("not JSON") from None

    async def _download(self) -> bytes:
        headers = {"accept": "application/json", "accept-encoding": "identity"}
        async with (
            httpx.AsyncClient(timeout=FETCH_DEADLINE_SECONDS, follow_redirects=False) as client,
            client.stream("GET", self._location, headers=headers) as response,
        ):
            response.raise_for_status()
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_JWKS_BYTES:
                raise JwksError(f"larger than {MAX_JWKS_BYTES} bytes")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksError(f"larger than {MAX_JWKS_BYTES} bytes")
            return bytes(body)

    def _read_file(self) -> bytes:
        with Path(self._location).open("rb") as handle:
            raw = handle.read(MAX_JWKS_BYTES + 1)
        if len(raw) > MAX_JWKS_BYTES:
            raise JwksError(f"larger than {MAX_JWKS_BYTES} bytes")
        return raw


def _subject(value: object) -> str:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_SUBJECT_CHARS
        or any(unicodedata.category(c) in _FORBIDDEN_SUBJECT_CATEGORIES for c in value)
    ):
        raise StaffAuthError(
            f"the token's sub must be 1 to {MAX_SUBJECT_CHARS} characters without control "
            "characters"
        )
    return value


class StaffVerifier:
    def __init__(
        self,
        issuer: str,
        audience: str,
        jwks: str,
        *,
        max_lifetime: int,
        clock: Clock | None = None,
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._max_lifetime = max_lifetime
        self._source = JwksSource(jwks, clock)

    async def verify(self, token: str) -> StaffPrincipal:
        if len(token) > MAX_TOKEN_CHARS:
            raise StaffAuthError(f"the token is longer than {MAX_TOKEN_CHARS} characters")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError):
            raise StaffAuthError("not a JWT") from None
        kid = header.get("kid")
        algorithm = header.get("alg")
        if not isinstance(kid, str) or not kid or algorithm not in ALGORITHMS:
            raise StaffAuthError("the token needs a kid and an asymmetric algorithm")
        key = await self._source.key(kid)
        if algorithm not in key.algorithms:
            raise StaffAuthError("the token's algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise StaffAuthError("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise StaffAuthError(f"invalid token ({type(exc).__name__})") from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            # The checks above leave nothing known to end here; a malformed token is never a
            # server error all the same.
            raise StaffAuthError(f"invalid token ({type(exc).__name__})") from None
        # PyJWT has checked that both are whole numbers.
        if int(claims["exp"]) - int(claims["iat"]) > self._max_lifetime:
            raise StaffAuthError(f"the token's lifetime (exp - iat) exceeds {self._max_lifetime} s")
        sub = _subject(claims["sub"])
        roles = claims.get("roles", [])
        if isinstance(roles, str):
            roles = roles.split()
        if not isinstance(roles, list):
            roles = []
        return StaffPrincipal(sub=sub, roles=frozenset(map(str, roles)))


def verifier_from_settings(settings: Settings, clock: Clock | None = None) -> StaffVerifier | None:
    if settings.staff_issuer and settings.staff_audience and settings.staff_jwks:
        return StaffVerifier(
            settings.staff_issuer,
            settings.staff_audience,
            settings.staff_jwks,
            max_lifetime=settings.staff_token_max_lifetime,
            clock=clock,
        )
    return None


def dev_token_lifetime(settings: DevTokenConfig | Settings) -> timedelta:
    """How long a ``staff-token`` lasts: 8 hours, or less if the service accepts less."""
    return min(DEV_TOKEN_LIFETIME, timedelta(seconds=settings.staff_token_max_lifetime))


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
        "exp": int((now + dev_token_lifetime(settings)).timestamp()),
    }
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": public_jwk(key)["kid"]})


def jwks_document(private_pem: bytes) -> dict[str, Any]:
    key = load_ed25519_private_key(private_pem, "CONSENT_DEV_STAFF_KEY_FILE")
    return {"keys": [public_jwk(key)]}
