"""API keys: bearer authentication, scopes, revocation across the cache, and the keys commands."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from litestar import Litestar

from service.db.api_keys import revoke_api_key
from service.db.invalidation import publish
from tests.support.cli import run_cli
from tests.support.credentials import make_api_key

PROBLEM_JSON = "application/problem+json"
CHECK = "/v1/consents/check?subject_id=child-1&purpose=tutoring"
REQUEST_BODY = {
    "subject_id": "child-1",
    "birth_date": "2015-04-01",
    "country": "SI",
    "guardian_email": "parent@example.com",
    "purposes": ["tutoring"],
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def assert_unauthorized(response: httpx.Response) -> None:
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_no_authorization_header(client: httpx.AsyncClient) -> None:
    assert_unauthorized(await client.get(CHECK))
    assert_unauthorized(await client.post("/v1/consent-requests", json=REQUEST_BODY))
    assert_unauthorized(
        await client.post("/v1/age-gate", json={"birth_date": "2015-01-01", "country": "SI"})
    )


async def test_wrong_scheme_is_unauthorized(client: httpx.AsyncClient, api_key: str) -> None:
    for header in (
        "Basic dXNlcjpwYXNz",
        f"Token {api_key}",
        api_key,  # no scheme
        "Bearer",
        "Bearer   ",
    ):
        response = await client.get(CHECK, headers={"Authorization": header})
        assert response.status_code == 401, header
        assert_unauthorized(response)


async def test_bearer_scheme_is_case_insensitive(client: httpx.AsyncClient, api_key: str) -> None:
    response = await client.get(CHECK, headers={"Authorization": f"bearer {api_key}"})
    assert response.status_code == 200, response.text


async def test_unknown_key_is_unauthorized(client: httpx.AsyncClient, api_key: str) -> None:
    for credential in ("csk_" + "A" * 43, api_key + "x", api_key[:-1], "not-a-key", "x" * 5000):
        response = await client.get(CHECK, headers=bearer(credential))
        assert response.status_code == 401, credential[:50]
        assert_unauthorized(response)
        assert credential not in response.text, "the credential is not echoed"


async def test_key_without_request_scope_cannot_open_requests(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    key = await make_api_key(db, "consent:check")

    response = await client.post("/v1/consent-requests", json=REQUEST_BODY, headers=bearer(key))

    body = assert_problem(response, 403)
    assert "consent:request" in str(body["detail"])
    assert await db.fetchval("select count(*) from consent_requests") == 0
    assert (await client.get(CHECK, headers=bearer(key))).status_code == 200


async def test_key_without_check_scope_cannot_check(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    key = await make_api_key(db, "consent:request")

    body = assert_problem(await client.get(CHECK, headers=bearer(key)), 403)
    assert "consent:check" in str(body["detail"])

    created = await client.post("/v1/consent-requests", json=REQUEST_BODY, headers=bearer(key))
    assert created.status_code == 201, created.text


async def test_valid_key_with_both_scopes(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.get(CHECK, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["allowed"] is False
    assert response.json()["status"] == "none"


async def wait_until_listening(app: Litestar) -> None:
    """The invalidation listener connects in the background; caching starts once it listens."""
    for _ in range(100):
        if app.state.listener.healthy:
            return
        await asyncio.sleep(0.02)
    pytest.fail("the cache invalidation listener never connected")


async def poll_until_status(
    client: httpx.AsyncClient, headers: dict[str, str], want: int
) -> httpx.Response:
    """Bounded wait (~2 s) for a NOTIFY to reach the listener; not a timing assertion."""
    response = await client.get(CHECK, headers=headers)
    for _ in range(40):
        if response.status_code == want:
            break
        await asyncio.sleep(0.05)
        response = await client.get(CHECK, headers=headers)
    return response


async def test_revoked_key_is_refused_even_after_it_was_cached(
    app: Litestar, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    key = await make_api_key(db, "consent:check")
    await wait_until_listening(app)
    assert (await client.get(CHECK, headers=bearer(key))).status_code == 200  # now cached
    key_id = await db.fetchval("select id from api_keys where key_hash = $1", _sha256(key))

    async with db.transaction():
        assert await revoke_api_key(db, key_id, datetime.now(UTC))
        await publish(db, "api_keys")

    assert_unauthorized(await poll_until_status(client, bearer(key), 401))
    assert_unauthorized(await client.get(CHECK, headers=bearer(key)))


async def test_revoking_one_key_keeps_the_others(
    app: Litestar, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    doomed = await make_api_key(db, "consent:check", name="doomed")
    kept = await make_api_key(db, "consent:check", name="kept")
    await wait_until_listening(app)
    for key in (doomed, kept):
        assert (await client.get(CHECK, headers=bearer(key))).status_code == 200
    async with db.transaction():
        key_id = await db.fetchval("select id from api_keys where name = 'doomed'")
        await revoke_api_key(db, key_id, datetime.now(UTC))
        await publish(db, "api_keys")

    assert (await poll_until_status(client, bearer(doomed), 401)).status_code == 401
    assert (await client.get(CHECK, headers=bearer(kept))).status_code == 200


def _sha256(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


# ---- the keys commands -----------------------------------------------------------------------


async def test_keys_create_prints_only_the_key_and_stores_only_a_hash(
    database_url: str, db: asyncpg.Connection, client: httpx.AsyncClient
) -> None:
    result = await run_cli(
        "keys", "create", "--name", "signup-app", "--scope", "consent:check",
        database_url=database_url,
    )  # fmt: skip

    assert result.code == 0, result.stderr
    assert len(result.lines) == 1, result.stdout
    key = result.lines[0]
    assert key.startswith("csk_")
    assert len(key) >= 4 + 43, "at least 256 bits of randomness"
    assert key not in result.stderr

    row = await db.fetchrow("select * from api_keys")
    assert row["name"] == "signup-app"
    assert row["scopes"] == ["consent:check"]
    assert row["key_hash"] == _sha256(key)
    for table in ("api_keys", "audit_events"):
        dumped = await db.fetchval(f"select coalesce(string_agg(t::text, ' '), '') from {table} t")
        assert key not in dumped, f"the key is stored in {table}"
        assert key[4:] not in dumped

    # the printed key is the one that works, with the scope it was given
    assert (await client.get(CHECK, headers=bearer(key))).status_code == 200
    refused = await client.post("/v1/consent-requests", json=REQUEST_BODY, headers=bearer(key))
    assert refused.status_code == 403


async def test_keys_create_with_several_scopes(database_url: str, db: asyncpg.Connection) -> None:
    result = await run_cli(
        "keys", "create", "--name", "both", "--scope", "consent:check", "consent:request",
        database_url=database_url,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    scopes = await db.fetchval("select scopes from api_keys where name = 'both'")
    assert sorted(scopes) == ["consent:check", "consent:request"]


async def test_keys_create_refuses_an_unknown_scope(
    database_url: str, db: asyncpg.Connection
) -> None:
    result = await run_cli(
        "keys", "create", "--name", "x", "--scope", "consent:admin", database_url=database_url
    )
    assert result.code != 0
    assert result.stdout == ""
    assert await db.fetchval("select count(*) from api_keys") == 0


async def test_keys_list_shows_names_never_keys(database_url: str) -> None:
    created = await run_cli(
        "keys", "create", "--name", "mobile-app", "--scope", "consent:request",
        database_url=database_url,
    )  # fmt: skip
    key = created.stdout.strip()

    listed = await run_cli("keys", "list", database_url=database_url)

    assert listed.code == 0, listed.stderr
    assert len(listed.lines) == 2, "a header and the key"
    assert "mobile-app" in listed.stdout
    assert "consent:request" in listed.stdout
    assert "active" in listed.stdout
    assert key not in listed.stdout
    assert key[4:] not in listed.stdout


async def test_keys_revoke(
    database_url: str, db: asyncpg.Connection, client: httpx.AsyncClient
) -> None:
    created = await run_cli(
        "keys", "create", "--name", "old", "--scope", "consent:check", database_url=database_url
    )
    key = created.stdout.strip()
    assert (await client.get(CHECK, headers=bearer(key))).status_code == 200
    key_id = await db.fetchval("select id from api_keys where name = 'old'")

    revoked = await run_cli("keys", "revoke", str(key_id), database_url=database_url)

    assert revoked.code == 0, revoked.stderr
    assert str(key_id) in revoked.stdout
    assert await db.fetchval("select revoked_at from api_keys where id = $1", key_id) is not None
    assert (
        await db.fetchval("select count(*) from audit_events where action = 'api_key.revoked'") == 1
    )
    assert_unauthorized(await poll_until_status(client, bearer(key), 401))
    listed = await run_cli("keys", "list", database_url=database_url)
    assert "revoked" in listed.stdout

    twice = await run_cli("keys", "revoke", str(key_id), database_url=database_url)
    assert twice.code != 0, "revoking a revoked key is reported"


@pytest.mark.parametrize("key_id", ["not-a-uuid", str(uuid.uuid4())], ids=["malformed", "unknown"])
async def test_keys_revoke_with_a_bad_id_fails(database_url: str, key_id: str) -> None:
    result = await run_cli("keys", "revoke", key_id, database_url=database_url)
    assert result.code != 0
    assert key_id in result.stderr
    assert result.stdout == ""
