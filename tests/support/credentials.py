"""Credentials the tests present: API keys stored in the database, and a development staff key
with the JWKS the app trusts (rotated like an identity provider rotates its keys)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.db import api_keys
from service.security.staff_tokens import jwks_document
from service.security.tokens import generate_signing_key_pem

# The operator's identity as a production configuration states it (`serve` refuses demo values).
OPERATOR_ENV = {
    "CONSENT_OPERATOR_NAME": "Učilnica Tutoring",
    "CONSENT_OPERATOR_ADDRESS": "Trubarjeva cesta 7, 1000 Ljubljana, Slovenia",
    "CONSENT_OPERATOR_EMAIL": "zasebnost@ucilnica-tutoring.si",
    "CONSENT_OPERATOR_DPO_EMAIL": "dpo@ucilnica-tutoring.si",
    "CONSENT_OPERATOR_SUPERVISORY_AUTHORITY": ("Informacijski pooblaščenec | https://www.ip-rs.si"),
}
STAFF_ISSUER = "https://login.tutoring.test/"
STAFF_AUDIENCE = "consent-service-staff"


async def make_api_key(db: asyncpg.Connection, *scopes: str, name: str = "signup") -> str:
    key, _ = await api_keys.create_api_key(
        db, name=name, scopes=list(scopes or api_keys.SCOPES), now=datetime.now(UTC)
    )
    return key


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class StaffKeys:
    """A development staff key (what ``staff-token`` signs with) and the JWKS the app trusts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key_file = directory / "staff-dev-key.pem"
        self.jwks_file = directory / "staff-jwks.json"
        self.pem = b""
        self.kid = ""
        self.rotate()

    def rotate(self, *, keep_old: bool = False) -> None:
        """Switch to a new key; the JWKS then lists the new key (and the old one if kept)."""
        pem = generate_signing_key_pem()
        document = jwks_document(pem)
        if keep_old and self.jwks_file.exists():
            document["keys"] += json.loads(self.jwks_file.read_text())["keys"]
        _write_atomically(self.key_file, pem)
        _write_atomically(self.jwks_file, json.dumps(document).encode())
        self.pem = pem
        self.kid = document["keys"][0]["kid"]

    @property
    def private_key(self) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key(self.pem, password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    def env(self) -> dict[str, str]:
        return {
            "CONSENT_DEV_STAFF_KEY_FILE": str(self.key_file),
            "CONSENT_STAFF_ISSUER": STAFF_ISSUER,
            "CONSENT_STAFF_AUDIENCE": STAFF_AUDIENCE,
            "CONSENT_STAFF_JWKS": str(self.jwks_file),
        }


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def staff_claims(**overrides: Any) -> dict[str, Any]:
    """Valid staff claims (support role, ten minutes left); an override of None drops a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": STAFF_ISSUER,
        "aud": STAFF_AUDIENCE,
        "sub": "alice",
        "roles": ["support"],
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def sign_ed25519(key: Ed25519PrivateKey, kid: str | None, claims: dict[str, Any]) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims, key, algorithm="EdDSA", headers=headers)
