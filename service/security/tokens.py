"""Link tokens for guardian emails and signed consent tokens (EdDSA JWTs) with their JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

LINK_TOKEN_BYTES = 32  # 256 bits of randomness; only the SHA-256 is stored


def new_link_token() -> str:
    return secrets.token_urlsafe(LINK_TOKEN_BYTES)


def hash_link_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def looks_like_link_token(token: str) -> bool:
    return 32 <= len(token) <= 64 and all(c.isalnum() or c in "-_" for c in token)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(private_key: Ed25519PrivateKey) -> dict[str, str]:
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    x = _b64url(raw)
    thumbprint_input = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True
    )
    kid = _b64url(hashlib.sha256(thumbprint_input.encode()).digest())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": "EdDSA"}


class ConsentTokenSigner:
    def __init__(self, private_key: Ed25519PrivateKey, issuer: str, audience: str) -> None:
        self._key = private_key
        self.jwk = public_jwk(private_key)
        self.kid = self.jwk["kid"]
        self.issuer = issuer
        self.audience = audience

    def sign(
        self,
        *,
        consent_id: str,
        subject_id: str,
        issued_at: datetime,
        expires_at: datetime,
        purposes: list[str],
        jurisdiction: str,
        method: str,
        policy_version: str,
        guardian_ref: str,
        purpose_methods: Mapping[str, str] | None = None,
    ) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject_id,
            "jti": consent_id,
            "iat": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
            "purposes": purposes,
            "jurisdiction": jurisdiction,
            "method": method,
            "policy_version": policy_version,
            "guardian": guardian_ref,
        }
        if purpose_methods is not None:
            # how each purpose was verified; `method` stays the method of the whole consent
            claims["purpose_methods"] = dict(purpose_methods)
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.kid})


def generate_signing_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
