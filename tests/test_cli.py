"""The ``consent-service`` command line, run as the installed console script."""

from __future__ import annotations

import stat
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.cli import main
from service.openapi_export import render_openapi
from service.settings import REPOSITORY_SCHEMAS_DIR
from tests.support.cli import run_cli

# ---- help ------------------------------------------------------------------------------------

COMMANDS = [
    ["serve"],
    ["worker"],
    ["dev"],
    ["migrate"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["keys", "signing-key"],
    ["staff-token"],
    ["openapi"],
    ["audit"],
    ["audit", "verify"],
    ["notice"],
    ["notice", "show"],
    ["reconsent"],
]


async def test_help_of_the_console_script(tmp_path: Path) -> None:
    result = await run_cli("--help", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("usage: consent-service")
    for command in {command[0] for command in COMMANDS}:
        assert command in result.stdout, f"{command} is not listed in --help"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_of_each_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert out.startswith(f"usage: consent-service {' '.join(command)}")


# ---- signing keys ----------------------------------------------------------------------------


async def test_signing_key_is_written_private_and_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "keys" / "signing.pem"

    written = await run_cli("keys", "signing-key", "--out", str(out), cwd=tmp_path)

    assert written.code == 0, written.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    pem = out.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert isinstance(serialization.load_pem_private_key(pem, password=None), Ed25519PrivateKey)

    again = await run_cli("keys", "signing-key", "--out", str(out), cwd=tmp_path)

    assert again.code != 0
    assert str(out) in again.stderr
    assert "overwrite" in again.stderr
    assert out.read_bytes() == pem, "the existing key is untouched"


# ---- openapi ---------------------------------------------------------------------------------


async def test_openapi_writes_the_rendered_document(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "openapi.json"

    result = await run_cli("openapi", "--output", str(out), cwd=tmp_path)

    assert result.code == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert out.read_text(encoding="utf-8") == render_openapi(REPOSITORY_SCHEMAS_DIR)
    assert [p.name for p in out.parent.iterdir()] == ["openapi.json"], "no temporary file left"
    # a public document: readable like any other file the operator creates, not private
    mode = stat.S_IMODE(out.stat().st_mode)
    assert mode & 0o444 == 0o444, f"openapi.json was written with mode {mode:o}"
    assert not mode & 0o022, f"openapi.json was written with mode {mode:o}"


# ---- audit verify ----------------------------------------------------------------------------


async def create_key(database_url: str, name: str) -> str:
    result = await run_cli(
        "keys", "create", "--name", name, "--scope", "consent:check", database_url=database_url
    )
    assert result.code == 0, result.stderr
    return result.stdout.strip()


async def test_audit_verify_detects_tampering(database_url: str, db: asyncpg.Connection) -> None:
    for name in ("first", "second", "third"):
        await create_key(database_url, name)
    events = await db.fetch("select id, action from audit_events order by id")
    assert [event["action"] for event in events] == ["api_key.created"] * 3

    intact = await run_cli("audit", "verify", database_url=database_url)

    assert intact.code == 0, intact.stderr
    assert "verified" in intact.stdout
    assert "3" in intact.stdout

    tampered = events[1]["id"]
    await db.execute("alter table audit_events disable trigger audit_events_append_only")
    await db.execute("update audit_events set action = 'api_key.rotated' where id = $1", tampered)
    await db.execute("alter table audit_events enable trigger audit_events_append_only")

    broken = await run_cli("audit", "verify", database_url=database_url)

    assert broken.code != 0
    assert "verified:" not in broken.stdout
    assert f"event {tampered}" in broken.stderr, broken.stderr
    assert len(broken.stderr.splitlines()) == 1


async def test_audit_verify_detects_a_removed_event(
    database_url: str, db: asyncpg.Connection
) -> None:
    for name in ("first", "second", "third"):
        await create_key(database_url, name)
    ids = [row["id"] for row in await db.fetch("select id from audit_events order by id")]
    await db.execute("alter table audit_events disable trigger audit_events_append_only")
    await db.execute("delete from audit_events where id = $1", ids[1])
    await db.execute("alter table audit_events enable trigger audit_events_append_only")

    broken = await run_cli("audit", "verify", database_url=database_url)

    assert broken.code != 0
    assert f"event {ids[2]}" in broken.stderr, broken.stderr


async def test_audit_verify_of_an_empty_trail(database_url: str) -> None:
    result = await run_cli("audit", "verify", database_url=database_url)
    assert result.code == 0, result.stderr
    assert "verified: 0 events" in result.stdout


async def test_database_commands_need_the_database_url(tmp_path: Path) -> None:
    result = await run_cli("keys", "list", cwd=tmp_path)
    assert result.code != 0
    [line] = result.stderr.splitlines()
    assert "CONSENT_DATABASE_URL" in line
