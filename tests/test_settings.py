"""Configuration: every missing or invalid CONSENT_* variable is one clear error naming it."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from service.security.tokens import generate_signing_key_pem
from service.settings import ConfigError, Settings, SmtpConfig, load_settings, parse_smtp_url
from tests.support.cli import run_cli

REQUIRED = [
    "CONSENT_DATABASE_URL",
    "CONSENT_SMTP_URL",
    "CONSENT_MAIL_FROM",
    "CONSENT_PUBLIC_URL",
    "CONSENT_SIGNING_KEY_FILE",
    "CONSENT_DATA_KEY",
]

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()


@pytest.fixture
def env(key_files: dict[str, str]) -> dict[str, str]:
    """A valid configuration; loading settings never connects, so no database is needed."""
    return {
        "CONSENT_DATABASE_URL": "postgresql://consent@127.0.0.1:5432/consent",
        "CONSENT_SMTP_URL": "smtp://127.0.0.1:2525",
        "CONSENT_MAIL_FROM": "consent@tutoring.example",
        "CONSENT_PUBLIC_URL": "https://consent.example/",
        "CONSENT_SIGNING_KEY_FILE": key_files["signing"],
        "CONSENT_DATA_KEY": key_files["data_key"],
    }


def config_error(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as raised:
        load_settings(env)
    message = str(raised.value)
    assert "\n" not in message, "a configuration error is one line"
    return message


def test_valid_environment_loads_with_documented_defaults(
    env: dict[str, str], key_files: dict[str, str]
) -> None:
    settings = load_settings(env)

    assert isinstance(settings, Settings)
    assert settings.database_url == env["CONSENT_DATABASE_URL"]
    assert settings.smtp == SmtpConfig(host="127.0.0.1", port=2525)
    assert settings.mail_from == "consent@tutoring.example"
    assert settings.public_url == "https://consent.example"  # trailing slash dropped
    assert settings.signing_key_pem == Path(key_files["signing"]).read_bytes()
    assert settings.data_key == base64.b64decode(key_files["data_key"])
    assert len(settings.data_key) == 32
    assert settings.min_age == 15
    assert settings.confirmation_delay == 86_400
    assert settings.webhook_url is None
    assert settings.staff_issuer is None
    # the key file really is usable
    assert settings.signing_key().public_key() is not None


def test_optional_variables_are_read(env: dict[str, str], tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    settings = load_settings(
        {
            **env,
            "CONSENT_MIN_AGE": "16",
            "CONSENT_CONFIRMATION_DELAY": "0",
            "CONSENT_WEBHOOK_URL": "https://app.example/hooks/consent",
            "CONSENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "CONSENT_STAFF_ISSUER": "https://idp.example",
            "CONSENT_STAFF_AUDIENCE": "consent-staff",
            "CONSENT_STAFF_JWKS": str(jwks),
        }
    )
    assert settings.min_age == 16
    assert settings.confirmation_delay == 0
    assert settings.webhook_url == "https://app.example/hooks/consent"
    assert settings.webhook_secret == WEBHOOK_SECRET
    assert (settings.staff_issuer, settings.staff_audience, settings.staff_jwks) == (
        "https://idp.example",
        "consent-staff",
        str(jwks),
    )


@pytest.mark.parametrize("variable", REQUIRED)
def test_each_missing_required_variable_is_named(env: dict[str, str], variable: str) -> None:
    del env[variable]
    message = config_error(env)
    assert message.startswith(variable), message


@pytest.mark.parametrize("variable", REQUIRED)
def test_blank_required_variable_counts_as_missing(env: dict[str, str], variable: str) -> None:
    env[variable] = "   "
    assert config_error(env).startswith(variable)


def rsa_key_file(directory: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "rsa.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


INVALID = {
    "data key not base64": ({"CONSENT_DATA_KEY": "not base64!!"}, "CONSENT_DATA_KEY"),
    "data key of 16 bytes": (
        {"CONSENT_DATA_KEY": base64.b64encode(bytes(16)).decode()},
        "CONSENT_DATA_KEY",
    ),
    "data key of 33 bytes": (
        {"CONSENT_DATA_KEY": base64.b64encode(bytes(33)).decode()},
        "CONSENT_DATA_KEY",
    ),
    "min age 12": ({"CONSENT_MIN_AGE": "12"}, "CONSENT_MIN_AGE"),
    "min age not a number": ({"CONSENT_MIN_AGE": "abc"}, "CONSENT_MIN_AGE"),
    "smtp url with http scheme": (
        {"CONSENT_SMTP_URL": "http://mail.example:25"},
        "CONSENT_SMTP_URL",
    ),
    "smtp port not a number": ({"CONSENT_SMTP_URL": "smtp://mail.example:x"}, "CONSENT_SMTP_URL"),
    "public url ftp": ({"CONSENT_PUBLIC_URL": "ftp://x"}, "CONSENT_PUBLIC_URL"),
    "database url not postgres": (
        {"CONSENT_DATABASE_URL": "mysql://db/consent"},
        "CONSENT_DATABASE_URL",
    ),
    "mail from not an address": ({"CONSENT_MAIL_FROM": "consent"}, "CONSENT_MAIL_FROM"),
    "webhook url without secret": (
        {"CONSENT_WEBHOOK_URL": "https://app.example/hooks"},
        "CONSENT_WEBHOOK_SECRET",
    ),
    "webhook secret without whsec_ prefix": (
        {
            "CONSENT_WEBHOOK_URL": "https://app.example/hooks",
            "CONSENT_WEBHOOK_SECRET": WEBHOOK_SECRET.removeprefix("whsec_"),
        },
        "CONSENT_WEBHOOK_SECRET",
    ),
    "webhook url not http": (
        {"CONSENT_WEBHOOK_URL": "ftp://app.example", "CONSENT_WEBHOOK_SECRET": WEBHOOK_SECRET},
        "CONSENT_WEBHOOK_URL",
    ),
    "confirmation delay negative": (
        {"CONSENT_CONFIRMATION_DELAY": "-1"},
        "CONSENT_CONFIRMATION_DELAY",
    ),
    "staff issuer alone": (
        {"CONSENT_STAFF_ISSUER": "https://idp.example"},
        "CONSENT_STAFF_ISSUER",
    ),
    "staff issuer without jwks": (
        {"CONSENT_STAFF_ISSUER": "https://idp.example", "CONSENT_STAFF_AUDIENCE": "staff"},
        "CONSENT_STAFF_ISSUER",
    ),
}


@pytest.mark.parametrize(("overrides", "variable"), INVALID.values(), ids=INVALID.keys())
def test_invalid_value_names_the_variable(
    env: dict[str, str], overrides: dict[str, str], variable: str
) -> None:
    message = config_error({**env, **overrides})
    assert message.startswith(f"{variable}:"), message
    assert len(message) > len(variable) + 2, "the message says what is wrong"


def test_staff_settings_must_come_together(env: dict[str, str]) -> None:
    message = config_error({**env, "CONSENT_STAFF_ISSUER": "https://idp.example"})
    assert "CONSENT_STAFF_AUDIENCE" in message
    assert "CONSENT_STAFF_JWKS" in message


def test_signing_key_file_missing(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    message = config_error({**env, "CONSENT_SIGNING_KEY_FILE": str(missing)})
    assert message.startswith("CONSENT_SIGNING_KEY_FILE:")
    assert str(missing) in message


def test_signing_key_file_not_pem(env: dict[str, str], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not a key\n")
    message = config_error({**env, "CONSENT_SIGNING_KEY_FILE": str(garbage)})
    assert message.startswith("CONSENT_SIGNING_KEY_FILE:")
    assert "PEM" in message


def test_signing_key_file_holding_an_rsa_key_is_refused(
    env: dict[str, str], tmp_path: Path
) -> None:
    message = config_error({**env, "CONSENT_SIGNING_KEY_FILE": str(rsa_key_file(tmp_path))})
    assert message.startswith("CONSENT_SIGNING_KEY_FILE:")
    assert "Ed25519" in message


def test_signing_key_file_holding_a_public_key_is_refused(
    env: dict[str, str], tmp_path: Path
) -> None:
    private = serialization.load_pem_private_key(generate_signing_key_pem(), password=None)
    public = tmp_path / "public.pem"
    public.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert config_error({**env, "CONSENT_SIGNING_KEY_FILE": str(public)}).startswith(
        "CONSENT_SIGNING_KEY_FILE:"
    )


# ---- SMTP URL -------------------------------------------------------------------------------


def test_smtp_url_with_credentials_port_and_starttls() -> None:
    config = parse_smtp_url("smtp://mailer:p%40ss%3Aword@mail.example:2525?starttls=true")
    assert config.host == "mail.example"
    assert config.port == 2525
    assert config.username == "mailer"
    assert config.password == "p@ss:word"  # percent-decoded
    assert config.starttls == "required"
    assert config.use_tls is False


def test_smtp_url_defaults() -> None:
    config = parse_smtp_url("smtp://mail.example")
    assert (config.host, config.port) == ("mail.example", 25)
    assert config.username is None
    assert config.password is None
    assert config.starttls == "auto"  # STARTTLS when the server offers it
    assert config.use_tls is False


def test_smtps_url_uses_implicit_tls_on_465() -> None:
    config = parse_smtp_url("smtps://u:p@mail.example")
    assert (config.port, config.use_tls, config.starttls) == (465, True, "auto")
    assert (config.username, config.password) == ("u", "p")


def test_smtp_url_starttls_must_be_a_boolean(env: dict[str, str]) -> None:
    message = config_error({**env, "CONSENT_SMTP_URL": "smtp://mail.example?starttls=maybe"})
    assert message.startswith("CONSENT_SMTP_URL:")


# ---- the command line fails at start --------------------------------------------------------


async def test_serve_without_configuration_fails_with_one_line(tmp_path: Path) -> None:
    # No CONSENT_* at all (run_cli passes PATH only). A server that started would bind the
    # port and keep running until run_cli's timeout fails the test.
    result = await run_cli("serve", "--host", "127.0.0.1", "--port", "0", cwd=tmp_path)

    assert result.code != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert "CONSENT_DATABASE_URL" in lines[0]
    assert result.stdout == ""
