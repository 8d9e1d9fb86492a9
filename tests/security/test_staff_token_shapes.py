"""Malformed staff tokens of every shape are 401 problems, never a server error: a token is
verified only with an algorithm its key allows (RS256 naming the Ed25519 key is refused before
any cryptography runs), and the claims a signed token carries are bounded too: its lifetime
(``exp - iat``, both required) and its ``sub``."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.clock import ManualClock
from service.security.tokens import public_jwk
from tests.support.credentials import StaffKeys, bearer, sign_ed25519, staff_claims
from tests.support.problems import assert_problem
from tests.support.service import Service, start_service

EVENTS = "/v1/subjects/child-shapes-1/events"
HOUR = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64url(json.dumps(value).encode())


class Keys:
    """The identity provider's keys: the Ed25519 staff key, an RSA key without a declared
    ``alg``, the same kind pinned to RS256, and a P-256 key."""

    def __init__(self, staff: StaffKeys) -> None:
        self.staff = staff
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pinned = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())

    @property
    def ed(self) -> Ed25519PrivateKey:
        return self.staff.private_key

    @property
    def ed_kid(self) -> str:
        return self.staff.kid

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        pinned_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.pinned.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        return {
            "keys": [
                public_jwk(self.ed),
                {**rsa_jwk, "kid": "rsa-1", "use": "sig"},
                {**pinned_jwk, "kid": "rsa-pinned", "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": "ec-1", "use": "sig"},
            ]
        }


@pytest.fixture
def keys(staff_keys: StaffKeys) -> Keys:
    return Keys(staff_keys)


@pytest.fixture
def svc_env(keys: Keys) -> dict[str, str]:
    jwks_file = keys.staff.directory / "idp-jwks.json"
    jwks_file.write_text(json.dumps(keys.jwks()))
    return {"CONSENT_STAFF_JWKS": str(jwks_file)}


def signed(key: Any, algorithm: str, kid: str | None, claims: dict[str, Any] | None = None) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims or staff_claims(), key, algorithm=algorithm, headers=headers)


def header_swapped(keys: Keys, header: dict[str, Any]) -> str:
    """A valid Ed25519 token whose header was replaced (so its signature no longer fits)."""
    _, payload, signature = sign_ed25519(keys.ed, keys.ed_kid, staff_claims()).split(".")
    return f"{segment(header)}.{payload}.{signature}"


def signed_payload(keys: Keys, payload: bytes) -> str:
    """Correctly signed by the staff key, whatever the payload bytes are."""
    return jwt.api_jws.encode(payload, keys.ed, algorithm="EdDSA", headers={"kid": keys.ed_kid})


def with_sub(sub: Any) -> Callable[[Keys], str]:
    return lambda keys: sign_ed25519(keys.ed, keys.ed_kid, staff_claims(sub=sub))


def lasting(seconds: int) -> dict[str, Any]:
    now = int(time.time())
    return staff_claims(iat=now - 60, exp=now - 60 + seconds)


MALFORMED: dict[str, tuple[Callable[[Keys], str], str]] = {
    # the algorithm does not fit the key that kid names
    "RS256 header on the Ed25519 kid": (
        lambda keys: header_swapped(keys, {"alg": "RS256", "typ": "JWT", "kid": keys.ed_kid}),
        "does not match its key",
    ),
    "RS256 signed by an RSA key, naming the Ed25519 kid": (
        lambda keys: signed(keys.rsa, "RS256", keys.ed_kid),
        "does not match its key",
    ),
    "ES256 header on the Ed25519 kid": (
        lambda keys: header_swapped(keys, {"alg": "ES256", "kid": keys.ed_kid}),
        "does not match its key",
    ),
    "PS256 header on the Ed25519 kid": (
        lambda keys: header_swapped(keys, {"alg": "PS256", "kid": keys.ed_kid}),
        "does not match its key",
    ),
    "EdDSA signed by the Ed25519 key, naming the RSA kid": (
        lambda keys: signed(keys.ed, "EdDSA", "rsa-1"),
        "does not match its key",
    ),
    "ES256 naming the RSA kid": (
        lambda keys: signed(keys.ec, "ES256", "rsa-1"),
        "does not match its key",
    ),
    "RS256 naming the P-256 kid": (
        lambda keys: signed(keys.rsa, "RS256", "ec-1"),
        "does not match its key",
    ),
    "ES384 naming the P-256 kid": (
        lambda keys: header_swapped(keys, {"alg": "ES384", "kid": "ec-1"}),
        "does not match its key",
    ),
    "PS256 on an RSA key published for RS256 only": (
        lambda keys: signed(keys.pinned, "PS256", "rsa-pinned"),
        "does not match its key",
    ),
    "alg none": (
        lambda keys: f"{segment({'alg': 'none', 'kid': keys.ed_kid})}.{segment(staff_claims())}.",
        "asymmetric algorithm",
    ),
    "HS256 keyed with the public key": (
        lambda keys: signed(public_jwk(keys.ed)["x"].encode(), "HS256", keys.ed_kid),
        "asymmetric algorithm",
    ),
    "alg a list": (
        lambda keys: header_swapped(keys, {"alg": ["EdDSA"], "kid": keys.ed_kid}),
        "asymmetric algorithm",
    ),
    # kid
    "no kid": (lambda keys: sign_ed25519(keys.ed, None, staff_claims()), "needs a kid"),
    "empty kid": (lambda keys: sign_ed25519(keys.ed, "", staff_claims()), "needs a kid"),
    "kid a number": (
        lambda keys: header_swapped(keys, {"alg": "EdDSA", "kid": 7}),
        "not a JWT",
    ),
    "unknown kid": (
        lambda keys: sign_ed25519(Ed25519PrivateKey.generate(), "nobody-knows", staff_claims()),
        "unknown key",
    ),
    # encoding
    "header not base64": (lambda keys: f"!!!.{segment(staff_claims())}.c2ln", "not a JWT"),
    "payload not base64": (
        lambda keys: f"{segment({'alg': 'EdDSA', 'kid': keys.ed_kid})}.%%%.c2ln",
        "not a JWT",
    ),
    "signature not base64": (
        lambda keys: sign_ed25519(keys.ed, keys.ed_kid, staff_claims()).rsplit(".", 1)[0] + ".@@@",
        "not a JWT",
    ),
    "header not JSON": (
        lambda keys: f"{b64url(b'alg=EdDSA')}.{segment(staff_claims())}.c2ln",
        "not a JWT",
    ),
    "header a JSON list": (
        lambda keys: f"{segment(['EdDSA'])}.{segment(staff_claims())}.c2ln",
        "not a JWT",
    ),
    "header with a 5000-digit number": (
        lambda keys: b64url(b'{"alg": ' + b"9" * 5000 + b"}") + f".{segment({})}.c2ln",
        "not a JWT",
    ),
    "two segments": (lambda keys: f"{segment({'alg': 'EdDSA'})}.{segment({})}", "not a JWT"),
    "four segments": (
        lambda keys: sign_ed25519(keys.ed, keys.ed_kid, staff_claims()) + ".c2ln",
        "not a JWT",
    ),
    "a megabyte": (lambda keys: "eyJ" + "A" * 1_000_000, "longer than"),
    "signed payload not JSON": (lambda keys: signed_payload(keys, b"sub=alice"), "invalid token"),
    "signed payload a JSON list": (
        lambda keys: signed_payload(keys, b'["sub", "alice"]'),
        "invalid token",
    ),
    # claims of a correctly signed token
    "lifetime of 12 h and a second": (
        lambda keys: sign_ed25519(keys.ed, keys.ed_kid, lasting(12 * HOUR + 1)),
        "lifetime",
    ),
    "lifetime of a year": (
        lambda keys: sign_ed25519(keys.ed, keys.ed_kid, lasting(365 * 24 * HOUR)),
        "lifetime",
    ),
    "without iat": (
        lambda keys: sign_ed25519(keys.ed, keys.ed_kid, staff_claims(iat=None)),
        "MissingRequiredClaim",
    ),
    "iat not a number": (
        lambda keys: sign_ed25519(keys.ed, keys.ed_kid, staff_claims(iat="yesterday")),
        "InvalidIssuedAt",
    ),
    "sub with a newline": (with_sub("alice\nstaff:admin"), "sub"),
    "sub with a NUL": (with_sub("alice\x00"), "sub"),
    "sub with an escape sequence": (with_sub("\x1b[31malice"), "sub"),
    "sub with a right-to-left override": (with_sub("alice\u202enimda"), "sub"),
    "sub with a line separator": (with_sub("alice\u2028bob"), "sub"),
    "empty sub": (with_sub(""), "sub"),
    "sub of 256 characters": (with_sub("a" * 256), "sub"),
    "sub a number": (with_sub(42), "Subject"),
}


async def test_every_malformed_staff_token_is_a_401_problem(svc: Service, keys: Keys) -> None:
    """One service for all shapes; every shape that is answered wrongly is reported."""
    wrong = {}
    for shape, (make, reason) in MALFORMED.items():
        token = make(keys)
        response = await svc.client.get(EVENTS, headers=bearer(token))
        body = response.text
        if (
            response.status_code != 401
            or not response.headers["content-type"].startswith("application/problem+json")
            or reason not in response.json()["detail"]
            or not response.headers.get("www-authenticate", "").startswith("Bearer ")
            or token in body
        ):
            wrong[shape] = f"{response.status_code} {body[:300]}"
    assert not wrong, json.dumps(wrong, indent=1)


WELL_FORMED: dict[str, Callable[[Keys], str]] = {
    "EdDSA by the Ed25519 key": lambda keys: signed(keys.ed, "EdDSA", keys.ed_kid),
    "RS256 by the RSA key": lambda keys: signed(keys.rsa, "RS256", "rsa-1"),
    "PS256 by the RSA key without a declared alg": lambda keys: signed(keys.rsa, "PS256", "rsa-1"),
    "RS512 by the RSA key": lambda keys: signed(keys.rsa, "RS512", "rsa-1"),
    "RS256 by the key pinned to it": lambda keys: signed(keys.pinned, "RS256", "rsa-pinned"),
    "ES256 by the P-256 key": lambda keys: signed(keys.ec, "ES256", "ec-1"),
    "a lifetime of exactly 12 h": lambda keys: sign_ed25519(
        keys.ed, keys.ed_kid, lasting(12 * HOUR)
    ),
    "a sub of 255 characters, not ASCII": lambda keys: sign_ed25519(
        keys.ed, keys.ed_kid, staff_claims(sub="ž" * 255)
    ),
    "an email address as sub": lambda keys: sign_ed25519(
        keys.ed, keys.ed_kid, staff_claims(sub="alice.support@tutoring.example")
    ),
}


async def test_a_well_formed_staff_token_of_each_key_type_is_accepted(
    svc: Service, keys: Keys
) -> None:
    wrong = {}
    for shape, make in WELL_FORMED.items():
        response = await svc.client.get(EVENTS, headers=bearer(make(keys)))
        if response.status_code != 200:
            wrong[shape] = f"{response.status_code} {response.text[:300]}"
    assert not wrong, json.dumps(wrong, indent=1)


async def test_the_longest_staff_token_lifetime_is_configurable(
    base_env: dict[str, str], clock: ManualClock, staff_keys: StaffKeys
) -> None:
    env = {**staff_keys.env(), "CONSENT_STAFF_TOKEN_MAX_LIFETIME": str(HOUR)}
    async with start_service(base_env, clock, env) as service_:
        assert service_.settings.staff_token_max_lifetime == HOUR
        refused = sign_ed25519(staff_keys.private_key, staff_keys.kid, lasting(HOUR + 1))
        problem = assert_problem(await service_.client.get(EVENTS, headers=bearer(refused)), 401)
        assert f"exceeds {HOUR} s" in problem["detail"], problem
        accepted = sign_ed25519(staff_keys.private_key, staff_keys.kid, lasting(HOUR))
        assert (await service_.client.get(EVENTS, headers=bearer(accepted))).status_code == 200
        # `staff-token` mints what the service accepts: no longer than the maximum.
        minted = service_.staff("support")
        token = minted["Authorization"].removeprefix("Bearer ")
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == HOUR
        assert (await service_.client.get(EVENTS, headers=minted)).status_code == 200
