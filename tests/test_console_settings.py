"""The support console's settings: off without an issuer, a client id required with it, the
issuer's transport, the roles claim and the session limits."""

from __future__ import annotations

import pytest

from service.settings import ConfigError, load_settings


@pytest.fixture
def env(base_env: dict[str, str]) -> dict[str, str]:
    return base_env


def test_the_console_is_off_by_default_with_its_documented_limits(env: dict[str, str]) -> None:
    settings = load_settings(env)
    assert settings.staff_oidc_issuer is None
    assert settings.staff_oidc_roles_claim == "roles"
    assert settings.console_idle_timeout == 30 * 60
    assert settings.console_session_lifetime == 8 * 3600


def test_console_settings_are_read(env: dict[str, str]) -> None:
    settings = load_settings(
        {
            **env,
            "CONSENT_STAFF_OIDC_ISSUER": "https://login.tutoring.example/realms/staff",
            "CONSENT_STAFF_OIDC_CLIENT_ID": "consent-console",
            "CONSENT_STAFF_OIDC_CLIENT_SECRET": "s3cret",
            "CONSENT_STAFF_OIDC_ROLES_CLAIM": "consent_roles",
            "CONSENT_CONSOLE_IDLE_TIMEOUT": "600",
            "CONSENT_CONSOLE_SESSION_LIFETIME": "3600",
        }
    )
    assert settings.staff_oidc_issuer == "https://login.tutoring.example/realms/staff"
    assert settings.staff_oidc_client_id == "consent-console"
    assert settings.staff_oidc_client_secret == "s3cret"
    assert settings.staff_oidc_roles_claim == "consent_roles"
    assert (settings.console_idle_timeout, settings.console_session_lifetime) == (600, 3600)


def test_an_issuer_needs_a_client_id(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="CONSENT_STAFF_OIDC_CLIENT_ID"):
        load_settings({**env, "CONSENT_STAFF_OIDC_ISSUER": "https://login.tutoring.example"})


def test_a_plain_http_issuer_only_on_loopback_or_in_dev(env: dict[str, str]) -> None:
    console = {"CONSENT_STAFF_OIDC_CLIENT_ID": "consent-console"}
    remote = {**env, **console, "CONSENT_STAFF_OIDC_ISSUER": "http://login.tutoring.example"}
    with pytest.raises(ConfigError, match="CONSENT_STAFF_OIDC_ISSUER"):
        load_settings(remote)
    assert load_settings(remote, dev_mode=True).staff_oidc_issuer
    local = {**env, **console, "CONSENT_STAFF_OIDC_ISSUER": "http://127.0.0.1:9000"}
    assert load_settings(local).staff_oidc_issuer == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONSENT_CONSOLE_IDLE_TIMEOUT", "59"),
        ("CONSENT_CONSOLE_IDLE_TIMEOUT", "thirty"),
        ("CONSENT_CONSOLE_SESSION_LIFETIME", "299"),
        ("CONSENT_CONSOLE_SESSION_LIFETIME", "604801"),
        ("CONSENT_STAFF_OIDC_ISSUER", "login.tutoring.example"),
    ],
)
def test_a_bad_console_value_names_its_variable(
    env: dict[str, str], variable: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings({**env, "CONSENT_STAFF_OIDC_CLIENT_ID": "c", variable: value})
