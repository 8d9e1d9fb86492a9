"""Security-relevant settings: the staff JWKS and the webhook receiver are reached over https
(plain http only to a loopback address, or under `consent-service dev`), and the longest staff
token lifetime is configurable."""

from __future__ import annotations

import base64

import pytest

from service.settings import (
    STAFF_TOKEN_MAX_LIFETIME_DEFAULT,
    ConfigError,
    DevTokenConfig,
    load_settings,
)

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


def staff(jwks: str) -> dict[str, str]:
    return {
        "CONSENT_STAFF_ISSUER": "https://idp.example/",
        "CONSENT_STAFF_AUDIENCE": "consent-staff",
        "CONSENT_STAFF_JWKS": jwks,
    }


def webhook(url: str) -> dict[str, str]:
    return {"CONSENT_WEBHOOK_URL": url, "CONSENT_WEBHOOK_SECRET": WEBHOOK_SECRET}


def one_line_error(env: dict[str, str], *, dev_mode: bool = False) -> str:
    with pytest.raises(ConfigError) as raised:
        load_settings(env, dev_mode=dev_mode)
    message = str(raised.value)
    assert "\n" not in message
    return message


CLEAR_TEXT = {
    "CONSENT_STAFF_JWKS": staff("http://idp.example/.well-known/jwks.json"),
    "CONSENT_WEBHOOK_URL": webhook("http://app.example/hooks/consent"),
}


@pytest.mark.parametrize("variable", list(CLEAR_TEXT))
def test_plain_http_to_another_host_is_refused_outside_dev(
    env: dict[str, str], variable: str
) -> None:
    message = one_line_error({**env, **CLEAR_TEXT[variable]})
    assert message.startswith(f"{variable}:"), message
    assert "https://" in message


@pytest.mark.parametrize("variable", list(CLEAR_TEXT))
def test_dev_accepts_plain_http(env: dict[str, str], variable: str) -> None:
    settings = load_settings({**env, **CLEAR_TEXT[variable]}, dev_mode=True)
    assert "http://" in (settings.staff_jwks or settings.webhook_url or "")


ACCEPTED = [
    "https://idp.example/.well-known/jwks.json",
    "http://127.0.0.1:8080/jwks",
    "http://127.8.9.10/jwks",
    "http://[::1]:8080/jwks",
    "http://localhost:8080/jwks",
]


@pytest.mark.parametrize("url", ACCEPTED)
def test_https_or_loopback_is_accepted(env: dict[str, str], url: str) -> None:
    settings = load_settings({**env, **staff(url), **webhook(url)})
    assert (settings.staff_jwks, settings.webhook_url) == (url, url)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.7/jwks",
        "http://[::ffff:10.0.0.7]/jwks",
        "http://localhost.idp.example/jwks",
        "http://127.0.0.1.nip.io/jwks",
    ],
)
def test_look_alikes_of_loopback_are_refused(env: dict[str, str], url: str) -> None:
    assert one_line_error({**env, **staff(url)}).startswith("CONSENT_STAFF_JWKS:")
    assert one_line_error({**env, **webhook(url)}).startswith("CONSENT_WEBHOOK_URL:")


def test_a_jwks_file_path_is_still_accepted(env: dict[str, str]) -> None:
    assert load_settings({**env, **staff("/etc/consent/staff-jwks.json")}).staff_jwks == (
        "/etc/consent/staff-jwks.json"
    )


def test_a_jwks_url_of_another_scheme_is_refused(env: dict[str, str]) -> None:
    message = one_line_error({**env, **staff("ftp://idp.example/jwks.json")}, dev_mode=True)
    assert message.startswith("CONSENT_STAFF_JWKS:"), message


def test_staff_token_max_lifetime_defaults_to_12_hours(env: dict[str, str]) -> None:
    assert STAFF_TOKEN_MAX_LIFETIME_DEFAULT == 12 * 3600
    assert load_settings(env).staff_token_max_lifetime == STAFF_TOKEN_MAX_LIFETIME_DEFAULT
    configured = {**env, "CONSENT_STAFF_TOKEN_MAX_LIFETIME": "3600"}
    assert load_settings(configured).staff_token_max_lifetime == 3600
    assert DevTokenConfig.from_env(configured).staff_token_max_lifetime == 3600
    assert DevTokenConfig.from_env({}).staff_token_max_lifetime == 12 * 3600


@pytest.mark.parametrize("value", ["0", "299", "604801", "12h", "-1"])
def test_staff_token_max_lifetime_out_of_range_names_the_variable(
    env: dict[str, str], value: str
) -> None:
    message = one_line_error({**env, "CONSENT_STAFF_TOKEN_MAX_LIFETIME": value})
    assert message.startswith("CONSENT_STAFF_TOKEN_MAX_LIFETIME:"), message
