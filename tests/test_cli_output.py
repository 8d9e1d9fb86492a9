"""What the commands print: the key alone on stdout, headers and "none" in listings, a
malformed head told from a mismatched one, and configuration errors as one line."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.support.cli import run_cli


async def test_keys_create_prints_the_key_alone_on_stdout_and_its_id_on_stderr(
    database_url: str, db: asyncpg.Connection
) -> None:
    result = await run_cli(
        "keys", "create", "--name", "signup-app", "--scope", "consent:check",
        database_url=database_url,
    )  # fmt: skip

    assert result.code == 0, result.stderr
    [key] = result.lines
    assert key.startswith("csk_")
    key_id = await db.fetchval("select id from api_keys where name = 'signup-app'")
    assert str(key_id) in result.stderr
    assert key not in result.stderr
    uuid.UUID(str(key_id))


async def test_keys_list_prints_a_header_and_none_when_there_are_no_keys(
    database_url: str,
) -> None:
    result = await run_cli("keys", "list", database_url=database_url)

    assert result.code == 0, result.stderr
    assert result.lines == ["ID  PREFIX  NAME  SCOPES  STATE", "none"]


async def test_keys_list_prints_the_header_above_the_keys(database_url: str) -> None:
    await run_cli(
        "keys", "create", "--name", "mobile-app", "--scope", "consent:check",
        database_url=database_url,
    )  # fmt: skip

    result = await run_cli("keys", "list", database_url=database_url)

    assert result.lines[0] == "ID  PREFIX  NAME  SCOPES  STATE"
    assert "mobile-app" in result.lines[1]
    assert "none" not in result.lines


async def test_outbox_list_prints_a_header_and_none_when_empty(database_url: str) -> None:
    result = await run_cli("outbox", "list", database_url=database_url)

    assert result.code == 0, result.stderr
    assert result.lines == ["ID  KIND  TOPIC  STATUS  ATTEMPTS  NEXT  LAST_ERROR", "none"]


async def _head(database_url: str) -> str:
    await run_cli(
        "keys", "create", "--name", "audited", "--scope", "consent:check",
        database_url=database_url,
    )  # fmt: skip
    verified = await run_cli("audit", "verify", database_url=database_url)
    assert verified.code == 0, verified.stderr
    head_line = next(line for line in verified.lines if line.startswith("head: "))
    return head_line.split()[1]


@pytest.mark.parametrize(
    "head",
    ["1:xyz", "1:" + "ab" * 31, "1:" + "ab" * 33, "one:" + "ab" * 32, "1" + "ab" * 32, "1:"],
    ids=["not-hex", "too-short", "too-long", "event-not-a-number", "no-colon", "no-hash"],
)
async def test_audit_verify_refuses_a_malformed_head_as_a_usage_error(
    database_url: str, head: str
) -> None:
    await _head(database_url)

    result = await run_cli("audit", "verify", "--expect-head", head, database_url=database_url)

    assert result.code == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert "not a head" in line
    assert "64 hex digits" in line
    assert "removed or rewritten" not in line
    assert result.stdout == ""


async def test_audit_verify_tells_a_mismatched_head_apart(database_url: str) -> None:
    head = await _head(database_url)
    event, _, digest = head.partition(":")
    other_digest = ("0" if digest[0] != "0" else "1") + digest[1:]

    matching = await run_cli("audit", "verify", "--expect-head", head, database_url=database_url)
    mismatched = await run_cli(
        "audit", "verify", "--expect-head", f"{event}:{other_digest}", database_url=database_url
    )
    missing = await run_cli(
        "audit", "verify", "--expect-head", f"{int(event) + 50}:{digest}", database_url=database_url
    )

    assert matching.code == 0, matching.stderr
    for result in (mismatched, missing):
        assert result.code == 3, result.stderr
        [line] = result.stderr.splitlines()
        assert "removed or rewritten" in line
        assert "not a head" not in line


async def test_a_bad_log_level_is_one_line_naming_the_variable_once(tmp_path: Path) -> None:
    result = await run_cli("keys", "list", env={"CONSENT_LOG_LEVEL": "loud"}, cwd=tmp_path)

    assert result.code == 2
    [line] = result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert line.count("CONSENT_LOG_LEVEL") == 1
    assert "'loud'" in line


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"CONSENT_SIGNING_KEY_FILE": "{not_a_key}"}, "CONSENT_SIGNING_KEY_FILE"),
        ({"CONSENT_STAFF_ISSUER": "https://idp.example"}, "CONSENT_STAFF_ISSUER"),
        ({"CONSENT_DATA_KEY": "short"}, "CONSENT_DATA_KEY"),
        ({"CONSENT_PUBLIC_URL": "ftp://x"}, "CONSENT_PUBLIC_URL"),
    ],
    ids=["signing-key", "staff-issuer", "data-key", "public-url"],
)
async def test_configuration_errors_name_the_variable_once(
    tmp_path: Path, base_env: dict[str, str], variables: dict[str, str], named: str
) -> None:
    not_a_key = tmp_path / "not-a-key.pem"
    not_a_key.write_text("not a key\n")
    env = {**base_env, **{k: v.format(not_a_key=not_a_key) for k, v in variables.items()}}

    result = await run_cli("serve", "--port", "1", env=env, cwd=tmp_path)

    assert result.code == 2
    [line] = result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert line.count(named) == 1, line
