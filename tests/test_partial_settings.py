"""The parts of the configuration a single command reads, all parsed in ``service.settings``."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from service.settings import (
    REPOSITORY_SCHEMAS_DIR,
    ConfigError,
    DevTokenConfig,
    LoggingConfig,
    MigrationConfig,
    Settings,
    database_url_from,
    load_settings,
)
from tests.support.cli import run_cli

DATABASE_URL = "postgresql://consent@127.0.0.1:5432/consent"


def one_line_error(read: Callable[[], object]) -> str:
    with pytest.raises(ConfigError) as raised:
        read()
    message = str(raised.value)
    assert "\n" not in message
    return message


def required_env(key_files: dict[str, str]) -> dict[str, str]:
    return {
        "CONSENT_DATABASE_URL": DATABASE_URL,
        "CONSENT_SMTP_URL": "smtp://127.0.0.1:2525",
        "CONSENT_MAIL_FROM": "consent@tutoring.example",
        "CONSENT_PUBLIC_URL": "https://consent.example",
        "CONSENT_SIGNING_KEY_FILE": key_files["signing"],
        "CONSENT_DATA_KEY": key_files["data_key"],
    }


def test_unset_optional_variables_keep_the_defaults_written_on_the_fields(
    key_files: dict[str, str],
) -> None:
    env = required_env(key_files)
    loaded = load_settings(env)
    built = Settings(
        database_url=loaded.database_url,
        smtp=loaded.smtp,
        mail_from=loaded.mail_from,
        public_url=loaded.public_url,
        signing_key_pem=loaded.signing_key_pem,
        data_key=loaded.data_key,
    )
    assert loaded == built
    assert load_settings({**env, "CONSENT_MIN_AGE": "  "}) == built, "blank counts as unset"


def test_the_database_url_alone() -> None:
    assert database_url_from({"CONSENT_DATABASE_URL": f" {DATABASE_URL} "}) == DATABASE_URL
    missing = one_line_error(lambda: database_url_from({}))
    assert missing == "CONSENT_DATABASE_URL: required but not set"
    wrong = one_line_error(lambda: database_url_from({"CONSENT_DATABASE_URL": "mysql://db/x"}))
    assert wrong.startswith("CONSENT_DATABASE_URL: expected a postgresql://")


def test_log_level() -> None:
    assert LoggingConfig.from_env({}).level == "info"
    assert LoggingConfig.from_env({"CONSENT_LOG_LEVEL": "WARNING"}).level == "warning"
    message = one_line_error(lambda: LoggingConfig.from_env({"CONSENT_LOG_LEVEL": "loud"}))
    assert message.startswith("CONSENT_LOG_LEVEL: expected one of debug, info")


def test_migration_config_reads_the_schema_directory(tmp_path: Path) -> None:
    only_url = MigrationConfig.from_env({"CONSENT_DATABASE_URL": DATABASE_URL})
    assert only_url.schemas_dir == REPOSITORY_SCHEMAS_DIR
    configured = MigrationConfig.from_env(
        {"CONSENT_DATABASE_URL": DATABASE_URL, "CONSENT_SCHEMAS_DIR": str(tmp_path)}
    )
    assert configured.schemas_dir == tmp_path
    missing = tmp_path / "missing"
    message = one_line_error(
        lambda: MigrationConfig.from_env(
            {"CONSENT_DATABASE_URL": DATABASE_URL, "CONSENT_SCHEMAS_DIR": str(missing)}
        )
    )
    assert message == f"CONSENT_SCHEMAS_DIR: no such directory: {missing}"


def test_settings_read_the_schema_directory_too(key_files: dict[str, str], tmp_path: Path) -> None:
    env = required_env(key_files)
    assert load_settings(env).schemas_dir == REPOSITORY_SCHEMAS_DIR
    assert load_settings({**env, "CONSENT_SCHEMAS_DIR": str(tmp_path)}).schemas_dir == tmp_path


def test_dev_token_config_reads_only_its_variables(tmp_path: Path) -> None:
    key = tmp_path / "dev-staff-key.pem"
    key.write_text("a key")
    env = {
        "CONSENT_DEV_STAFF_KEY_FILE": str(key),
        "CONSENT_STAFF_ISSUER": "consent-dev",
        "CONSENT_STAFF_AUDIENCE": "consent-service",
        "CONSENT_DATA_KEY": "not read by staff-token",
    }
    assert DevTokenConfig.from_env(env) == DevTokenConfig(
        dev_staff_key_file=str(key), staff_issuer="consent-dev", staff_audience="consent-service"
    )
    assert DevTokenConfig.from_env({}) == DevTokenConfig()
    missing = str(tmp_path / "gone.pem")
    message = one_line_error(
        lambda: DevTokenConfig.from_env({**env, "CONSENT_DEV_STAFF_KEY_FILE": missing})
    )
    assert message == f"CONSENT_DEV_STAFF_KEY_FILE: no such file: {missing}"


async def test_a_bad_log_level_stops_any_command_with_one_line(tmp_path: Path) -> None:
    result = await run_cli(
        "keys", "signing-key", "--out", str(tmp_path / "key.pem"),
        env={"CONSENT_LOG_LEVEL": "chatty"}, cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 2
    [line] = result.stderr.splitlines()
    assert "CONSENT_LOG_LEVEL" in line
    assert not (tmp_path / "key.pem").exists()


async def test_migrate_uses_the_configured_schema_directory(
    empty_database_url: str, tmp_path: Path
) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(REPOSITORY_SCHEMAS_DIR, schemas)
    (schemas / "9000_extra_table.sql").write_text("create table extra_table (id int);\n")
    env = {"CONSENT_DATABASE_URL": empty_database_url, "CONSENT_SCHEMAS_DIR": str(schemas)}

    result = await run_cli("migrate", env=env, cwd=tmp_path)

    assert result.code == 0, result.stderr
    assert "9000_extra_table.sql" in result.stdout
    connection = await asyncpg.connect(empty_database_url)
    try:
        assert await connection.fetchval("select to_regclass('extra_table') is not null")
    finally:
        await connection.close()


async def test_migrate_with_a_missing_schema_directory_names_the_variable(
    tmp_path: Path,
) -> None:
    env = {"CONSENT_DATABASE_URL": DATABASE_URL, "CONSENT_SCHEMAS_DIR": str(tmp_path / "none")}
    result = await run_cli("migrate", env=env, cwd=tmp_path)
    assert result.code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("consent-service: CONSENT_SCHEMAS_DIR: no such directory")


async def test_openapi_reads_the_schema_directory_like_a_served_app(tmp_path: Path) -> None:
    missing = tmp_path / "none"
    out = tmp_path / "openapi.json"
    env = {"CONSENT_SCHEMAS_DIR": str(missing)}
    result = await run_cli("openapi", "--output", str(out), env=env, cwd=tmp_path)
    assert result.code == 2
    [line] = result.stderr.splitlines()
    assert line == f"consent-service: CONSENT_SCHEMAS_DIR: no such directory: {missing}"
    assert not out.exists()
