"""Support console sign-in with OpenID Connect: the authorization code flow with PKCE, through
Authlib (discovery, the authorization URL, the code exchange, the ID token's signature and
claims). No HTTP framework here: the console's routes (``service.http.console``) carry what
this module returns between the browser and the identity provider.

A sign-in in progress (state, nonce, PKCE verifier) travels in a cookie encrypted and
authenticated with the data key, so an anonymous visitor writes nothing to the database; it
lives for ``SIGN_IN_SECONDS`` and is used once.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

import httpx2
import msgspec
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import BaseApp
from authlib.integrations.base_client.async_app import AsyncOAuth2Mixin
from authlib.integrations.base_client.async_openid import AsyncOpenIDMixin
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc.errors import JoseError

from service.security.personal_data import DataProtector
from service.settings import Settings

logger = logging.getLogger("service.security.staff_oidc")

CALLBACK_PATH = "/console/auth/callback"
SIGNED_OUT_PATH = "/console/auth/signed-out"
SCOPES = "openid profile email"
# The roles the console knows, with the staff API's meaning: support reads and handles a case,
# admin exports and erases.
CONSOLE_ROLES = frozenset({"support", "admin"})
SIGN_IN_SECONDS = 600
HTTP_TIMEOUT_SECONDS = 5.0
ID_TOKEN_LEEWAY_SECONDS = 30
_COOKIE_CONTEXT = b"consent/console-sign-in/v1"


class SignInError(Exception):
    """The sign-in cannot complete: a mismatched state or nonce, a refused or forged answer."""


class ProviderUnavailable(Exception):
    """The identity provider could not be reached or answered with an error."""


class PendingSignIn(msgspec.Struct, frozen=True, kw_only=True):
    state: str
    nonce: str
    code_verifier: str
    started_at: datetime
    # where to go after signing in: a console path, never another site
    next_path: str = "/console"


class StaffIdentity(msgspec.Struct, frozen=True, kw_only=True):
    sub: str
    name: str | None
    roles: frozenset[str]


class _OidcApp(AsyncOAuth2Mixin, AsyncOpenIDMixin, BaseApp):  # type: ignore[misc]
    client_cls = AsyncOAuth2Client


def console_path(value: str | None) -> str:
    """A path inside the console to return to, or the console home: never an open redirect."""
    if value and value.startswith("/console") and "//" not in value and "\\" not in value:
        return value if value.isprintable() and len(value) <= 512 else "/console"
    return "/console"


class StaffOidc:
    """The console's OpenID Connect client for one issuer (from the settings)."""

    def __init__(self, settings: Settings, protector: DataProtector) -> None:
        assert settings.staff_oidc_issuer
        assert settings.staff_oidc_client_id
        self.issuer = settings.staff_oidc_issuer.rstrip("/")
        self.redirect_uri = settings.public_url.rstrip("/") + CALLBACK_PATH
        self.post_logout_uri = settings.public_url.rstrip("/") + SIGNED_OUT_PATH
        self.roles_claim = settings.staff_oidc_roles_claim
        self.client_id = settings.staff_oidc_client_id
        self._protector = protector
        secret = settings.staff_oidc_client_secret
        self._app = _OidcApp(
            framework=None,
            client_id=self.client_id,
            client_secret=secret,
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs={
                "scope": SCOPES,
                "code_challenge_method": "S256",
                "token_endpoint_auth_method": "client_secret_basic" if secret else "none",
                "timeout": HTTP_TIMEOUT_SECONDS,
                "follow_redirects": False,
            },
        )

    async def begin(self, now: datetime, next_path: str | None) -> tuple[str, bytes]:
        """The URL that sends the browser to the identity provider, and the sealed cookie value
        that the callback needs (state, nonce and the PKCE verifier)."""
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        try:
            started = await self._app.create_authorization_url(
                redirect_uri=self.redirect_uri, state=state, nonce=nonce
            )
        except (httpx2.HTTPError, ValueError, KeyError, RuntimeError) as exc:
            raise ProviderUnavailable(type(exc).__name__) from None
        pending = PendingSignIn(
            state=state,
            nonce=nonce,
            code_verifier=started["code_verifier"],
            started_at=now,
            next_path=console_path(next_path),
        )
        return str(started["url"]), self._protector.encrypt(
            msgspec.json.encode(pending), _COOKIE_CONTEXT
        )

    def pending(self, sealed: bytes | None, now: datetime) -> PendingSignIn:
        """The sign-in this browser started, or SignInError (none, forged, or too old)."""
        if not sealed:
            raise SignInError("no sign-in was started in this browser")
        try:
            pending = msgspec.json.decode(
                self._protector.decrypt(sealed, _COOKIE_CONTEXT), type=PendingSignIn
            )
        except Exception:
            raise SignInError("the sign-in cookie is not one this service made") from None
        if now - pending.started_at > timedelta(seconds=SIGN_IN_SECONDS):
            raise SignInError("the sign-in took too long")
        return pending

    async def finish(self, pending: PendingSignIn, query: dict[str, str]) -> StaffIdentity:
        """Check the identity provider's answer against the pending sign-in (state, issuer),
        exchange the code with the PKCE verifier and check the ID token (signature, issuer,
        audience, expiry, nonce); the staff member it names, with their console roles."""
        if not hmac.compare_digest(query.get("state", ""), pending.state):
            raise SignInError("the state does not match the sign-in this browser started")
        if "error" in query:
            raise SignInError(f"the identity provider refused: {query['error'][:100]}")
        code = query.get("code")
        if not code:
            raise SignInError("the identity provider sent no code")
        metadata = await self._metadata()
        answered_by = query.get("iss")
        if answered_by is not None and answered_by != metadata.get("issuer"):
            raise SignInError("the answer comes from another issuer (RFC 9207)")
        try:
            token = await self._app.fetch_access_token(
                redirect_uri=self.redirect_uri, code=code, code_verifier=pending.code_verifier
            )
        except httpx2.HTTPError as exc:
            raise ProviderUnavailable(type(exc).__name__) from None
        except AuthlibBaseError as exc:
            raise SignInError(f"the code was refused: {exc.error}") from None
        if "id_token" not in token:
            raise SignInError("the identity provider sent no ID token")
        try:
            claims = await self._app.parse_id_token(
                token,
                nonce=pending.nonce,
                claims_options={
                    "iss": {"essential": True, "values": [metadata.get("issuer")]},
                    "aud": {"essential": True, "values": [self.client_id]},
                    "nonce": {"essential": True},
                    "sub": {"essential": True},
                },
                leeway=ID_TOKEN_LEEWAY_SECONDS,
            )
        except httpx2.HTTPError as exc:
            raise ProviderUnavailable(type(exc).__name__) from None
        except (JoseError, AuthlibBaseError, ValueError) as exc:
            raise SignInError(f"the ID token was refused: {exc}") from None
        return self._identity(dict(claims))

    async def logout_url(self) -> str | None:
        """Where to send the browser to end the identity provider's session too, when the
        provider offers RP-initiated logout (``end_session_endpoint``)."""
        try:
            metadata = await self._metadata()
            if not metadata.get("end_session_endpoint"):
                return None
            logout = await self._app.create_logout_url(
                post_logout_redirect_uri=self.post_logout_uri, client_id=self.client_id
            )
        except ProviderUnavailable:
            return None
        return str(logout["url"])

    async def _metadata(self) -> dict[str, Any]:
        try:
            metadata: dict[str, Any] = await self._app.load_server_metadata()
        except (httpx2.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(type(exc).__name__) from None
        return metadata

    def _identity(self, claims: dict[str, Any]) -> StaffIdentity:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 255 or not sub.isprintable():
            raise SignInError("the ID token's sub is not a usable staff id")
        name = claims.get("name") or claims.get("email")
        raw_roles = claims.get(self.roles_claim)
        if isinstance(raw_roles, str):
            raw_roles = raw_roles.split()
        roles = (
            {r for r in raw_roles if isinstance(r, str)} if isinstance(raw_roles, list) else set()
        )
        return StaffIdentity(
            sub=sub,
            name=name[:255] if isinstance(name, str) and name.isprintable() else None,
            roles=frozenset(roles & CONSOLE_ROLES),
        )
