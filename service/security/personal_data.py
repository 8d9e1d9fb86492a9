"""Protection of personal data at rest: encryption and keyed lookup hashes.

Independent subkeys are derived from ``CONSENT_DATA_KEY`` with HKDF, so the lookup hash
reveals nothing about the encryption key and vice versa, and neither about the pseudonyms that
replace a subject id and a guardian reference once a record's retention period is over.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.security.email_address import EmailAddress, parse_email_address

_NONCE_BYTES = 12
_VERSION = b"\x01"


def _derive(key: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(key)


class DataProtector:
    def __init__(self, data_key: bytes) -> None:
        self._aead = AESGCM(_derive(data_key, b"consent/encryption/v1"))
        self._lookup_key = _derive(data_key, b"consent/lookup-hash/v1")
        self._reference_key = _derive(data_key, b"consent/guardian-reference/v1")
        self._pseudonym_key = _derive(data_key, b"consent/retention-pseudonym/v1")

    def encrypt(self, plaintext: bytes, context: bytes = b"") -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context)

    def decrypt(self, blob: bytes, context: bytes = b"") -> bytes:
        if blob[:1] != _VERSION:
            raise ValueError("unknown ciphertext version")
        nonce = blob[1 : 1 + _NONCE_BYTES]
        return self._aead.decrypt(nonce, blob[1 + _NONCE_BYTES :], context)

    def lookup_hash(self, value: str) -> bytes:
        return hmac.new(self._lookup_key, value.encode(), hashlib.sha256).digest()

    def address_hashes(self, address: EmailAddress) -> list[bytes]:
        """The lookup hashes that find an address's rows; the first is the one to store."""
        return [self.lookup_hash(form) for form in address.lookup_forms]

    def guardian_reference(self, normalized_email: str) -> str:
        """An opaque, stable reference to a guardian: the same for siblings, never the email."""
        digest = hmac.new(self._reference_key, normalized_email.encode(), hashlib.sha256).digest()
        return "g_" + base64.b32encode(digest[:15]).decode().lower()

    def subject_pseudonym(self, subject_id: str) -> str:
        """What a purged record keeps instead of the app's subject id: stable, so check still
        finds the record for that id, but nobody without the data key can tell whose it is."""
        return self._pseudonym(b"subject", subject_id)

    def guardian_pseudonym(self, guardian_ref: str) -> str:
        """What a purged record keeps instead of the guardian reference."""
        return self._pseudonym(b"guardian", guardian_ref)

    def _pseudonym(self, kind: bytes, value: str) -> str:
        digest = hmac.new(self._pseudonym_key, kind + b"\0" + value.encode(), hashlib.sha256)
        # '#' never appears in a subject id or a guardian reference: a pseudonym is never
        # taken for one.
        return PSEUDONYM_PREFIX + base64.b32encode(digest.digest()[:20]).decode().lower()


PSEUDONYM_PREFIX = "#"


def normalize_email(email: str) -> str:
    """How a valid address is stored and mailed (``EmailAddress.address``)."""
    return parse_email_address(email).address


def mask_email(email: str) -> str:
    """``jane.doe@example.com`` -> ``j***@e***.com``: enough for support, useless to a thief."""
    local, _, domain = email.rpartition("@")
    host, _, tld = domain.rpartition(".")
    masked_host = (host[:1] + "***") if host else "***"
    return f"{local[:1]}***@{masked_host}.{tld}" if tld else f"{local[:1]}***@***"
