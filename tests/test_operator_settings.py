"""The operator's identity (the direct notice): real values for `serve` and `worker`, visibly
demo values for `dev` and tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import ConfigError, SupervisoryAuthority, load_settings
from tests.support.cli import run_cli
from tests.support.credentials import OPERATOR_ENV


@pytest.fixture
def env(key_files: dict[str, str]) -> dict[str, str]:
    """Everything but the operator's identity; loading settings never connects."""
    return {
        "CONSENT_DATABASE_URL": "postgresql://consent@127.0.0.1:5432/consent",
        "CONSENT_SMTP_URL": "smtp://127.0.0.1:2525",
        "CONSENT_MAIL_FROM": "consent@tutoring.example",
        "CONSENT_PUBLIC_URL": "https://consent.example/",
        "CONSENT_SIGNING_KEY_FILE": key_files["signing"],
        "CONSENT_DATA_KEY": key_files["data_key"],
    }


def production_error(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as raised:
        load_settings(env, production=True)
    message = str(raised.value)
    assert "\n" not in message, "a configuration error is one line"
    return message


def test_development_and_tests_keep_visibly_demo_values(env: dict[str, str]) -> None:
    for settings in (load_settings(env), load_settings(env, dev_mode=True)):
        assert "demo" in settings.operator_name
        assert "demo" in settings.operator_address
        assert settings.operator_email.endswith(".invalid")
        assert settings.operator_dpo_email is None
        assert "demo" in settings.operator_supervisory_authority.name


def test_production_reads_the_operator_identity(env: dict[str, str]) -> None:
    settings = load_settings({**env, **OPERATOR_ENV}, production=True)

    assert settings.operator_name == "Učilnica Tutoring"
    assert settings.operator_address == "Trubarjeva cesta 7, 1000 Ljubljana, Slovenia"
    assert settings.operator_email == "zasebnost@ucilnica-tutoring.si"
    assert settings.operator_dpo_email == "dpo@ucilnica-tutoring.si"
    assert settings.operator_supervisory_authority == SupervisoryAuthority(
        name="Informacijski pooblaščenec", url="https://www.ip-rs.si"
    )


def test_the_authority_may_be_named_without_a_website(env: dict[str, str]) -> None:
    settings = load_settings(
        {**env, **OPERATOR_ENV, "CONSENT_OPERATOR_SUPERVISORY_AUTHORITY": "Datatilsynet"},
        production=True,
    )
    assert settings.operator_supervisory_authority == SupervisoryAuthority(name="Datatilsynet")


def test_the_dpo_is_optional(env: dict[str, str]) -> None:
    without_dpo = {k: v for k, v in OPERATOR_ENV.items() if k != "CONSENT_OPERATOR_DPO_EMAIL"}
    assert load_settings({**env, **without_dpo}, production=True).operator_dpo_email is None


@pytest.mark.parametrize(
    "variable",
    [
        "CONSENT_OPERATOR_NAME",
        "CONSENT_OPERATOR_ADDRESS",
        "CONSENT_OPERATOR_EMAIL",
        "CONSENT_OPERATOR_SUPERVISORY_AUTHORITY",
    ],
)
def test_production_requires_each_part_of_the_identity(env: dict[str, str], variable: str) -> None:
    missing = {k: v for k, v in OPERATOR_ENV.items() if k != variable}
    assert production_error({**env, **missing}) == f"{variable}: required but not set"
    blank = {**OPERATOR_ENV, variable: "   "}
    assert production_error({**env, **blank}) == f"{variable}: required but not set"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONSENT_OPERATOR_NAME", "changeme"),
        ("CONSENT_OPERATOR_NAME", "<your company>"),
        ("CONSENT_OPERATOR_ADDRESS", "TODO"),
        ("CONSENT_OPERATOR_EMAIL", "privacy@example.invalid"),
        ("CONSENT_OPERATOR_EMAIL", "privacy@example.com"),
        ("CONSENT_OPERATOR_EMAIL", "dpo@mail.example.org"),
        ("CONSENT_OPERATOR_DPO_EMAIL", "dpo@example.net"),
        ("CONSENT_OPERATOR_DPO_EMAIL", "not an address"),
        ("CONSENT_OPERATOR_SUPERVISORY_AUTHORITY", "Change Me | https://www.ip-rs.si"),
        ("CONSENT_OPERATOR_SUPERVISORY_AUTHORITY", "Authority | https://example.org/complain"),
        ("CONSENT_OPERATOR_SUPERVISORY_AUTHORITY", "Authority | ftp://authority.si"),
    ],
)
def test_production_refuses_placeholders(env: dict[str, str], variable: str, value: str) -> None:
    message = production_error({**env, **OPERATOR_ENV, variable: value})
    assert message.startswith(f"{variable}: ")


def test_a_name_that_merely_contains_a_placeholder_word_is_real(env: dict[str, str]) -> None:
    settings = load_settings(
        {**env, **OPERATOR_ENV, "CONSENT_OPERATOR_NAME": "Todorović inštrukcije d.o.o."},
        production=True,
    )
    assert settings.operator_name == "Todorović inštrukcije d.o.o."


@pytest.mark.parametrize("command", ["serve", "worker"])
async def test_production_roles_refuse_to_start_on_a_placeholder(
    env: dict[str, str], command: str, tmp_path: Path
) -> None:
    placeholder = {**env, **OPERATOR_ENV, "CONSENT_OPERATOR_EMAIL": "privacy@example.com"}
    args = ("serve", "--host", "127.0.0.1", "--port", "0") if command == "serve" else (command,)

    result = await run_cli(*args, env=placeholder, cwd=tmp_path)

    assert result.code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("consent-service: CONSENT_OPERATOR_EMAIL: ")
    assert "example.com" in lines[0]


async def test_serve_names_the_missing_operator_variable(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = await run_cli("serve", "--host", "127.0.0.1", "--port", "0", env=env, cwd=tmp_path)

    assert result.code == 2
    assert result.stderr.strip() == "consent-service: CONSENT_OPERATOR_NAME: required but not set"
