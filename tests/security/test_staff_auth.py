"""Staff JWT authentication and roles: every way a token can be wrong is a 401 problem, a
missing role is a 403, the development ``staff-token`` command mints what the app accepts, and
a rotated identity-provider key is picked up."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import service.security.staff_tokens
from service.clock import ManualClock
from service.security.tokens import public_jwk
from tests.support.cli import run_cli
from tests.support.credentials import (
    STAFF_AUDIENCE,
    STAFF_ISSUER,
    StaffKeys,
    bearer,
    make_api_key,
    sign_ed25519,
    staff_claims,
)
from tests.support.flows import granted_consent
from tests.support.problems import assert_problem
from tests.support.service import Service, start_service

EVENTS = "/v1/subjects/child-staff-1/events"
SUBJECT = "/v1/subjects/child-staff-1"
EXPORT = "/v1/subjects/child-staff-1/export"
REVOKE_ANY = "/v1/consents/0b6f9f43-9a43-4a8e-9d4c-8f2f8f0d6a11/revoke"


# ---- each kind of bad credential is a 401 problem ----------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _other_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _unknown_kid() -> str:
    """Signed correctly by a key the identity provider never published."""
    other = _other_key()
    return sign_ed25519(other, public_jwk(other)["kid"], staff_claims())


def _tampered(keys: StaffKeys) -> str:
    """A valid support token whose payload was swapped for one claiming admin."""
    header, _, signature = sign_ed25519(keys.private_key, keys.kid, staff_claims()).split(".")
    payload = _b64url(json.dumps(staff_claims(roles=["support", "admin"])).encode())
    return f"{header}.{payload}.{signature}"


def _hs256_with_public_key(keys: StaffKeys) -> str:
    """Algorithm confusion: HMAC keyed with the (public) JWKS key material."""
    secret = public_jwk(keys.private_key)["x"]
    return jwt.encode(staff_claims(), secret, algorithm="HS256", headers={"kid": keys.kid})


def _alg_none(keys: StaffKeys) -> str:
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": keys.kid}).encode())
    payload = _b64url(json.dumps(staff_claims(roles=["support", "admin"])).encode())
    return f"{header}.{payload}."


Credential = Callable[[StaffKeys, str], dict[str, str]]

BAD_CREDENTIALS: dict[str, Credential] = {
    "no token": lambda keys, api_key: {},
    "not a bearer scheme": lambda keys, api_key: {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    "empty bearer": lambda keys, api_key: {"Authorization": "Bearer "},
    "garbage": lambda keys, api_key: bearer("this-is-not-a-jwt"),
    "three garbage segments": lambda keys, api_key: bearer("abc.def.ghi"),
    "expired": lambda keys, api_key: bearer(
        sign_ed25519(
            keys.private_key,
            keys.kid,
            staff_claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        )
    ),
    "not yet valid": lambda keys, api_key: bearer(
        sign_ed25519(keys.private_key, keys.kid, staff_claims(nbf=int(time.time()) + 3600))
    ),
    "without exp": lambda keys, api_key: bearer(
        sign_ed25519(keys.private_key, keys.kid, staff_claims(exp=None))
    ),
    "without sub": lambda keys, api_key: bearer(
        sign_ed25519(keys.private_key, keys.kid, staff_claims(sub=None))
    ),
    "another key with the same kid": lambda keys, api_key: bearer(
        sign_ed25519(_other_key(), keys.kid, staff_claims())
    ),
    "unknown kid": lambda keys, api_key: bearer(_unknown_kid()),
    "no kid": lambda keys, api_key: bearer(sign_ed25519(keys.private_key, None, staff_claims())),
    "wrong issuer": lambda keys, api_key: bearer(
        sign_ed25519(keys.private_key, keys.kid, staff_claims(iss="https://evil.example/"))
    ),
    "wrong audience": lambda keys, api_key: bearer(
        sign_ed25519(keys.private_key, keys.kid, staff_claims(aud="some-other-service"))
    ),
    "alg none": lambda keys, api_key: bearer(_alg_none(keys)),
    "HS256 keyed with the public key": lambda keys, api_key: bearer(_hs256_with_public_key(keys)),
    "tampered payload": lambda keys, api_key: bearer(_tampered(keys)),
    "an API key": lambda keys, api_key: bearer(api_key),
}


# Why each is refused (a fragment of the problem's detail): each fails for its own reason.
REASONS = {
    "no token": "Missing bearer credential",
    "not a bearer scheme": "Missing bearer credential",
    "empty bearer": "Missing bearer credential",
    "garbage": "not a JWT",
    "three garbage segments": "not a JWT",
    "expired": "expired",
    "not yet valid": "ImmatureSignature",
    "without exp": "MissingRequiredClaim",
    "without sub": "MissingRequiredClaim",
    "another key with the same kid": "InvalidSignature",
    "unknown kid": "unknown key",
    "no kid": "needs a kid",
    "wrong issuer": "InvalidIssuer",
    "wrong audience": "InvalidAudience",
    "alg none": "asymmetric algorithm",
    "HS256 keyed with the public key": "asymmetric algorithm",
    "tampered payload": "InvalidSignature",
    "an API key": "not a JWT",
}


@pytest.mark.parametrize("kind", list(BAD_CREDENTIALS))
async def test_bad_staff_credentials_are_401_problems(
    svc: Service, staff_keys: StaffKeys, db: asyncpg.Connection, kind: str
) -> None:
    api_key = await make_api_key(db)
    headers = BAD_CREDENTIALS[kind](staff_keys, api_key)
    credential = headers.get("Authorization", "").partition(" ")[2]
    for method, path in [
        ("GET", EVENTS),
        ("GET", EXPORT),
        ("POST", REVOKE_ANY),
        ("DELETE", SUBJECT),
    ]:
        if kind == "an API key" and method == "DELETE":
            # erasure also takes an API key (scope subject:erase): tests/http/test_app_levers.py
            continue
        body = {"reason": "testing the guard"} if method == "POST" else None
        response = await svc.client.request(method, path, headers=headers, json=body)
        problem = assert_problem(response, 401)
        assert REASONS[kind] in problem["detail"], problem
        assert "WWW-Authenticate" in response.headers, (method, path)
        # The problem explains; it never echoes the credential back.
        if credential:
            assert credential not in json.dumps(problem)
    assert await db.fetchval("select count(*) from audit_events") == 0


async def test_a_valid_staff_token_is_accepted(svc: Service, staff_keys: StaffKeys) -> None:
    token = sign_ed25519(staff_keys.private_key, staff_keys.kid, staff_claims())
    response = await svc.client.get(EVENTS, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json() == {"subject_id": "child-staff-1", "events": []}
    # Clock skew within the 30 s leeway is tolerated.
    skewed = sign_ed25519(
        staff_keys.private_key, staff_keys.kid, staff_claims(exp=int(time.time()) - 5)
    )
    assert (await svc.client.get(EVENTS, headers=bearer(skewed))).status_code == 200


async def test_staff_token_on_an_api_key_route_is_401(svc: Service) -> None:
    response = await svc.client.get(
        "/v1/consents/check",
        params={"subject_id": "child-staff-1", "purpose": "tutoring"},
        headers=svc.staff("support", "admin"),
    )
    assert_problem(response, 401)


async def test_unreadable_staff_jwks_is_401_not_500(
    base_env: dict[str, str], clock: ManualClock, staff_keys: StaffKeys, tmp_path: Path
) -> None:
    env = {**staff_keys.env(), "CONSENT_STAFF_JWKS": str(tmp_path / "missing-jwks.json")}
    async with start_service(base_env, clock, env) as service_:
        response = await service_.client.get(EVENTS, headers=service_.staff("support"))
        assert_problem(response, 401)


async def test_staff_auth_not_configured_is_401(
    client: httpx.AsyncClient, staff_keys: StaffKeys
) -> None:
    token = sign_ed25519(staff_keys.private_key, staff_keys.kid, staff_claims())
    for method, path in [("GET", EVENTS), ("GET", EXPORT), ("DELETE", SUBJECT)]:
        response = await client.request(method, path, headers=bearer(token))
        problem = assert_problem(response, 401)
        assert "not configured" in problem["detail"]


# ---- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "method", "path"),
    [
        (["support"], "GET", EXPORT),
        (["support"], "DELETE", SUBJECT),
        (["admin"], "POST", REVOKE_ANY),
        ([], "GET", EVENTS),
        ([], "GET", SUBJECT),
        ([], "POST", REVOKE_ANY),
    ],
    ids=[
        "support-export",
        "support-erase",
        "admin-only-revoke",
        "no-role-events",
        "no-role-overview",
        "no-role-revoke",
    ],
)
async def test_missing_role_is_403(
    svc: Service, staff_keys: StaffKeys, roles: list[str], method: str, path: str
) -> None:
    token = sign_ed25519(staff_keys.private_key, staff_keys.kid, staff_claims(roles=roles))
    body = {"reason": "testing the guard"} if method == "POST" else None
    response = await svc.client.request(method, path, headers=bearer(token), json=body)
    problem = assert_problem(response, 403)
    assert "role" in problem["detail"]


async def test_roles_admit_what_they_should(svc: Service, db: asyncpg.Connection) -> None:
    support = svc.staff("support")
    admin = svc.staff("admin")
    assert (await svc.client.get(EVENTS, headers=support)).status_code == 200
    assert (await svc.client.get(SUBJECT, headers=support)).status_code == 200
    assert (await svc.client.get(EVENTS, headers=admin)).status_code == 200
    assert (await svc.client.get(EXPORT, headers=admin)).status_code == 200
    revoke = await svc.client.post(REVOKE_ANY, json={"reason": "no such consent"}, headers=support)
    assert_problem(revoke, 404)  # past the guard: the consent does not exist
    # only the reads, each naming its reader; nothing is stored about the subject
    reads = await db.fetch("select actor, action, subject_id from audit_events order by id")
    assert [(r["action"], r["subject_id"]) for r in reads] == [
        ("subject.events_read", None),
        ("subject.viewed", None),
        ("subject.events_read", None),
        ("subject.exported", None),
    ]
    assert {r["actor"] for r in reads} == {"staff:alice"}


async def test_consent_record_is_readable_with_an_api_key_or_a_staff_token(
    svc: Service,
    staff_keys: StaffKeys,
    db: asyncpg.Connection,
    clock: ManualClock,
    mailbox: Any,
) -> None:
    api = bearer(await make_api_key(db))
    granted = await granted_consent(
        svc, api, mailbox, subject_id="child-staff-record", email="record.parent@example.com"
    )
    path = f"/v1/consents/{granted.consent_id}"
    by_app = await svc.client.get(path, headers=api)
    by_support = await svc.client.get(path, headers=svc.staff("support"))
    by_admin = await svc.client.get(path, headers=svc.staff("admin"))
    for response in (by_app, by_support, by_admin):
        assert response.status_code == 200, response.text
        assert response.json()["id"] == granted.consent_id
        assert response.json()["status"] == "granted"
    assert by_app.json() == by_support.json()

    request_only = bearer(await make_api_key(db, "consent:request", name="request-only"))
    assert_problem(await svc.client.get(path, headers=request_only), 403)
    no_role = sign_ed25519(staff_keys.private_key, staff_keys.kid, staff_claims(roles=[]))
    assert_problem(await svc.client.get(path, headers=bearer(no_role)), 403)
    assert_problem(await svc.client.get(path, headers=bearer("garbage")), 401)
    assert_problem(await svc.client.get(path), 401)


# ---- the staff-token command ---------------------------------------------------------------


async def test_staff_token_command_prints_one_jwt_the_app_accepts(
    svc: Service, base_env: dict[str, str], staff_keys: StaffKeys
) -> None:
    env = {**base_env, **staff_keys.env()}
    result = await run_cli("staff-token", "--sub", "alice", "--role", "support", env=env)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    token = lines[0]
    assert token.count(".") == 2
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == staff_keys.kid
    claims = jwt.decode(
        token,
        staff_keys.private_key.public_key(),
        algorithms=["EdDSA"],
        audience=STAFF_AUDIENCE,
        issuer=STAFF_ISSUER,
    )
    assert claims["sub"] == "alice"
    assert claims["roles"] == ["support"]

    assert (await svc.client.get(EVENTS, headers=bearer(token))).status_code == 200
    assert_problem(await svc.client.get(EXPORT, headers=bearer(token)), 403)

    both = await run_cli(
        "staff-token", "--sub", "bob", "--role", "support", "--role", "admin", env=env
    )
    assert both.code == 0, both.stderr
    admin_token = both.stdout.strip()
    assert (await svc.client.get(EXPORT, headers=bearer(admin_token))).status_code == 200


async def test_staff_token_command_without_a_dev_key_names_the_variable(
    base_env: dict[str, str], staff_keys: StaffKeys
) -> None:
    env = {**base_env, **staff_keys.env()}
    del env["CONSENT_DEV_STAFF_KEY_FILE"]
    result = await run_cli("staff-token", "--sub", "alice", "--role", "support", env=env)
    assert result.code != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CONSENT_DEV_STAFF_KEY_FILE" in lines[0]


# ---- key rotation at the identity provider -------------------------------------------------


async def test_rotated_jwks_is_used_by_a_new_app(
    base_env: dict[str, str], clock: ManualClock, staff_keys: StaffKeys
) -> None:
    async with start_service(base_env, clock, staff_keys.env()) as first:
        old_token = first.staff("support")
        assert (await first.client.get(EVENTS, headers=old_token)).status_code == 200
        staff_keys.rotate()
        new_token = first.staff("support")  # staff-token now signs with the new key
    async with start_service(base_env, clock, staff_keys.env()) as second:
        assert (await second.client.get(EVENTS, headers=new_token)).status_code == 200
        assert_problem(await second.client.get(EVENTS, headers=old_token), 401)


@pytest.mark.parametrize("keep_old", [False, True], ids=["replaced", "overlap"])
async def test_unknown_kid_rereads_the_rotated_jwks_file(
    svc: Service, staff_keys: StaffKeys, monkeypatch: pytest.MonkeyPatch, keep_old: bool
) -> None:
    """The source re-reads the JWKS for an unknown kid, but at most every 30 s (a burst of
    forged kids must not hammer the identity provider). Rather than sleep 30 s, the test
    lifts that throttle; the rotation logic itself is what runs."""
    old = svc.staff("support")
    assert (await svc.client.get(EVENTS, headers=old)).status_code == 200  # JWKS now cached
    monkeypatch.setattr(service.security.staff_tokens, "REFRESH_AT_MOST_EVERY_SECONDS", 0.0)
    staff_keys.rotate(keep_old=keep_old)
    new = svc.staff("support")
    response = await svc.client.get(EVENTS, headers=new)
    assert response.status_code == 200, response.text
    again = await svc.client.get(EVENTS, headers=old)
    if keep_old:
        assert again.status_code == 200
    else:
        assert_problem(again, 401)


class JwksServer:
    """An identity provider's JWKS endpoint that counts how often it is fetched."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.fetches = 0
        lock = threading.Lock()
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    server_self.fetches += 1
                body = json.dumps(server_self.document).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def jwks_server(staff_keys: StaffKeys) -> Iterator[JwksServer]:
    server = JwksServer(json.loads(staff_keys.jwks_file.read_text()))
    server.thread.start()
    try:
        yield server
    finally:
        server.stop()


async def test_jwks_url_is_cached_and_forged_kids_do_not_hammer_it(
    base_env: dict[str, str],
    clock: ManualClock,
    staff_keys: StaffKeys,
    jwks_server: JwksServer,
) -> None:
    env = {**staff_keys.env(), "CONSENT_STAFF_JWKS": jwks_server.url}
    async with start_service(base_env, clock, env) as service_:
        for _ in range(5):
            response = await service_.client.get(EVENTS, headers=service_.staff("support"))
            assert response.status_code == 200, response.text
        assert jwks_server.fetches == 1
        for _ in range(10):
            response = await service_.client.get(EVENTS, headers=bearer(_unknown_kid()))
            assert_problem(response, 401)
        assert jwks_server.fetches <= 2
