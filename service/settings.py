"""Settings read once from ``CONSENT_*`` environment variables; nothing else reads them.

Every problem is reported as :class:`ConfigError` whose message names the variable, so a
misconfigured replica stops at start with one line instead of failing on its first request.
Commands that need only part of the configuration (``migrate``, ``keys``, ``staff-token``,
``audit verify``) read only that part, so they run without the rest. Each default is written
once: on its field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.config_values import (
    ConfigError as ConfigError,
)
from service.config_values import (
    IPNetwork as IPNetwork,
)
from service.config_values import (
    SmtpConfig as SmtpConfig,
)
from service.config_values import (
    StartTls as StartTls,
)
from service.config_values import (
    SupervisoryAuthority as SupervisoryAuthority,
)
from service.config_values import (
    encrypted_or_local,
    existing_directory,
    existing_directory_name,
    existing_file,
    int_between,
    non_empty,
    off_or,
    parse_bool,
    parse_ca_file,
    parse_country_code,
    parse_data_key,
    parse_email_address,
    parse_http_url,
    parse_jwks_location,
    parse_log_level,
    parse_mailbox,
    parse_postgres_dsn,
    parse_public_url,
    parse_supervisory_authority,
    parse_webhook_secret,
    read_signing_key,
    refuse_placeholder,
)
from service.config_values import (
    load_ed25519_private_key as load_ed25519_private_key,
)
from service.config_values import (
    mailbox as mailbox,
)
from service.config_values import (
    parse_networks as parse_networks,
)
from service.config_values import (
    parse_smtp_url as parse_smtp_url,
)

T = TypeVar("T")

DAY = 86_400
# The operator's own minimum age without a guardian (its privacy policy); the age gate applies
# the higher of this and the child's country's age.
OPERATOR_MIN_AGE_DEFAULT = 15
OPERATOR_MIN_AGE_RANGE = range(13, 19)
REPOSITORY_SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas"
# The longest staff token (exp - iat) the service accepts: a working day and then some.
STAFF_TOKEN_MAX_LIFETIME_DEFAULT = 12 * 3600
STAFF_TOKEN_MAX_LIFETIME_RANGE = (300, 7 * DAY)
# The support console's sessions (``service.consent.staff_sessions``): idle and absolute limits.
CONSOLE_IDLE_TIMEOUT_DEFAULT = 30 * 60
CONSOLE_SESSION_LIFETIME_DEFAULT = 8 * 3600
# Like `serve --host`: the worker's metrics are scraped from outside its container.
WORKER_METRICS_HOST_DEFAULT = "0.0.0.0"  # noqa: S104


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str
    smtp: SmtpConfig
    # A mailbox: an address, optionally with a display name (``config_values.mailbox``).
    mail_from: str
    public_url: str
    signing_key_pem: bytes
    data_key: bytes
    min_age: int = OPERATOR_MIN_AGE_DEFAULT
    staff_issuer: str | None = None
    staff_audience: str | None = None
    staff_jwks: str | None = None
    dev_staff_key_file: str | None = None
    staff_token_max_lifetime: int = STAFF_TOKEN_MAX_LIFETIME_DEFAULT
    # The support console's sign-in (OpenID Connect); the console is off while the issuer is unset.
    staff_oidc_issuer: str | None = None
    staff_oidc_client_id: str | None = None
    staff_oidc_client_secret: str | None = None
    staff_oidc_roles_claim: str = "roles"
    console_idle_timeout: int = CONSOLE_IDLE_TIMEOUT_DEFAULT
    console_session_lifetime: int = CONSOLE_SESSION_LIFETIME_DEFAULT
    webhook_url: str | None = None
    webhook_secret: str | None = None
    confirmation_delay: int = DAY
    # Days a consent on an older notice stays live after `reconsent` asks the guardian again.
    reconsent_grace_days: int = 30
    request_ttl: int = 7 * DAY
    # Seconds the handoff code of a new request works (the parent types it on their own device).
    handoff_ttl: int = 30 * 60
    consent_max_validity: int = 365 * DAY
    # Where a guardian's reply to an email goes (a mailbox like mail_from); None: to mail_from.
    mail_reply_to: str | None = None
    # Seconds before an undecided request's link expires that the guardian is reminded, once;
    # 0: no reminders.
    reminder_before_expiry: int = 2 * DAY
    token_audience: str = "consent-clients"  # noqa: S105 - an audience name, not a secret
    # Who the guardian deals with (the direct notice). The defaults are visibly demo values for
    # `dev` and tests; `serve` and `worker` refuse to start without real ones.
    operator_name: str = "Example Tutoring (demo operator)"
    operator_address: str = "Demo Street 1, 1000 Ljubljana, Slovenia (demo address)"
    operator_email: str = "privacy@example.invalid"
    operator_dpo_email: str | None = None
    # Where the operator is: its support console shows times in this country's zone.
    operator_country: str = "SI"
    operator_supervisory_authority: SupervisoryAuthority = SupervisoryAuthority(
        name="Demo Supervisory Authority (demo)", url="https://example.invalid/authority"
    )
    privacy_notice_url: str = "https://example.invalid/privacy"
    purposes_file: str | None = None
    db_pool_max: int = 10
    # Seconds a replica may answer from its cache (API keys) without reading the database.
    cache_ttl: int = 60
    # Subjects whose check state each process keeps (``service.db.check_cache``); 0: none.
    check_cache_size: int = 100_000
    outbox_max_attempts: int = 8
    # Seconds a worker holds a message it claimed; renewed while the send is in progress, so a
    # crashed worker's message is sent again by another one this soon.
    outbox_lease: int = 15
    # SMTP connections a worker sends on at once, each draining batches it claimed itself:
    # one connection spends most of its time waiting for the server's replies.
    # one lane keeps the order in which emails due together leave (a guardian reads them in
    # the order they happened); more overlap the replies of a distant SMTP server
    outbox_concurrency: int = 1
    retention_denied: int = 30 * DAY
    retention_expired: int = 30 * DAY
    retention_withdrawn: int = 90 * DAY
    # The operator's promises for rights requests: an answer within 10 days, a complaint about
    # an access decision decided within five working days (its privacy policy).
    data_request_due_days: int = 10
    complaint_due_working_days: int = 5
    # Days before a consent lapses (the child comes of age) that guardian and app are told.
    lapsing_notice_days: int = 30
    # A full withdrawal erases the personal data held for the consent and asks the app to delete
    # the child's data (the operator's policy: withdrawal means deletion).
    withdrawal_erases: bool = True
    # Peers whose X-Forwarded-For is believed (``service.http.client_address``).
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Deprecated: without trusted_proxies, believe one X-Forwarded-For hop from any peer.
    trust_forwarded_for: bool = False
    schemas_dir: Path = REPOSITORY_SCHEMAS_DIR
    worker_metrics_port: int | None = None
    worker_metrics_host: str = WORKER_METRICS_HOST_DEFAULT
    # Set by `serve --workers N` for its worker processes (prometheus_client reads it too).
    metrics_multiprocess_dir: str | None = None
    dev_mode: bool = False

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def token_issuer(self) -> str:
        return self.public_url

    def signing_key(self) -> Ed25519PrivateKey:
        return load_ed25519_private_key(self.signing_key_pem, "CONSENT_SIGNING_KEY_FILE")

    @property
    def deprecations(self) -> list[str]:
        """Settings still honoured but on their way out, for a warning at start-up."""
        notes = []
        if self.trust_forwarded_for:
            notes.append(
                "CONSENT_TRUST_FORWARDED_FOR is deprecated"
                + (
                    " and ignored because CONSENT_TRUSTED_PROXIES is set"
                    if self.trusted_proxies
                    else ""
                )
                + ": list the addresses of your proxies in CONSENT_TRUSTED_PROXIES instead"
            )
        return notes


class DevTokenConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What ``staff-token`` needs, so minting does not require the whole configuration."""

    dev_staff_key_file: str | None = None
    staff_issuer: str | None = None
    staff_audience: str | None = None
    staff_token_max_lifetime: int = STAFF_TOKEN_MAX_LIFETIME_DEFAULT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DevTokenConfig:
        return cls(**_Reader(env).fields(_dev_token_variables()))


class LoggingConfig(msgspec.Struct, frozen=True, kw_only=True):
    level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LoggingConfig:
        return cls(**_Reader(env).fields({"level": ("CONSENT_LOG_LEVEL", parse_log_level)}))


def database_url_from(env: Mapping[str, str]) -> str:
    """``CONSENT_DATABASE_URL`` alone, for the commands that need nothing else."""
    return _Reader(env).required("CONSENT_DATABASE_URL", parse_postgres_dsn)


def schemas_dir_from(env: Mapping[str, str]) -> Path:
    """``CONSENT_SCHEMAS_DIR`` alone: where the migration files are."""
    directory: Path = (
        _Reader(env).fields(_schemas_dir_variable()).get("schemas_dir", REPOSITORY_SCHEMAS_DIR)
    )
    return directory


class MigrationConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What ``migrate`` needs: the database and where the SQL files are."""

    database_url: str
    schemas_dir: Path = REPOSITORY_SCHEMAS_DIR

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MigrationConfig:
        return cls(database_url=database_url_from(env), schemas_dir=schemas_dir_from(env))


# The operator's identity, which every guardian reads in the direct notice: required, and no
# placeholder, for the production roles (``serve``, ``worker``).
OPERATOR_VARIABLES: _Variables = {
    "operator_name": ("CONSENT_OPERATOR_NAME", non_empty),
    "operator_address": ("CONSENT_OPERATOR_ADDRESS", non_empty),
    "operator_email": ("CONSENT_OPERATOR_EMAIL", parse_email_address),
    "operator_supervisory_authority": (
        "CONSENT_OPERATOR_SUPERVISORY_AUTHORITY",
        parse_supervisory_authority,
    ),
}
OPTIONAL_OPERATOR_VARIABLES: _Variables = {
    "operator_dpo_email": ("CONSENT_OPERATOR_DPO_EMAIL", parse_email_address),
}


def load_settings(
    env: Mapping[str, str], *, dev_mode: bool = False, production: bool = False
) -> Settings:
    """Build settings from an environment mapping, raising ConfigError naming the variable.

    ``production`` (``serve`` and ``worker``): the operator's identity must be set, and not to a
    placeholder; elsewhere (``dev``, tests) unset values keep their demo defaults.
    """
    reader = _Reader(env)
    settings = Settings(
        database_url=database_url_from(env),
        smtp=_smtp_config(reader),
        mail_from=reader.required("CONSENT_MAIL_FROM", parse_mailbox),
        public_url=reader.required("CONSENT_PUBLIC_URL", parse_public_url),
        signing_key_pem=reader.required("CONSENT_SIGNING_KEY_FILE", read_signing_key),
        data_key=reader.required("CONSENT_DATA_KEY", parse_data_key),
        dev_mode=dev_mode,
        # Unset variables are left out, so every field keeps the default written on it.
        **reader.fields(
            {
                "min_age": (
                    "CONSENT_MIN_AGE",
                    int_between(OPERATOR_MIN_AGE_RANGE.start, OPERATOR_MIN_AGE_RANGE.stop - 1),
                ),
                **_dev_token_variables(),
                "staff_jwks": ("CONSENT_STAFF_JWKS", parse_jwks_location),
                "staff_oidc_issuer": ("CONSENT_STAFF_OIDC_ISSUER", parse_http_url),
                "staff_oidc_client_id": ("CONSENT_STAFF_OIDC_CLIENT_ID", non_empty),
                "staff_oidc_client_secret": ("CONSENT_STAFF_OIDC_CLIENT_SECRET", non_empty),
                "staff_oidc_roles_claim": ("CONSENT_STAFF_OIDC_ROLES_CLAIM", non_empty),
                "console_idle_timeout": ("CONSENT_CONSOLE_IDLE_TIMEOUT", int_between(60, DAY)),
                "console_session_lifetime": (
                    "CONSENT_CONSOLE_SESSION_LIFETIME",
                    int_between(300, 7 * DAY),
                ),
                "webhook_url": ("CONSENT_WEBHOOK_URL", parse_http_url),
                "webhook_secret": ("CONSENT_WEBHOOK_SECRET", parse_webhook_secret),
                "confirmation_delay": ("CONSENT_CONFIRMATION_DELAY", int_between(0, 30 * DAY)),
                "request_ttl": ("CONSENT_REQUEST_TTL", int_between(600, 30 * DAY)),
                "handoff_ttl": ("CONSENT_HANDOFF_TTL", int_between(300, DAY)),
                "consent_max_validity": (
                    "CONSENT_MAX_VALIDITY",
                    int_between(DAY, 5 * 365 * DAY),
                ),
                "token_audience": ("CONSENT_TOKEN_AUDIENCE", non_empty),
                "mail_reply_to": ("CONSENT_MAIL_REPLY_TO", parse_mailbox),
                "reminder_before_expiry": (
                    "CONSENT_REMINDER_BEFORE_EXPIRY",
                    off_or(int_between(0, 30 * DAY)),
                ),
                **OPERATOR_VARIABLES,
                **OPTIONAL_OPERATOR_VARIABLES,
                "operator_country": ("CONSENT_OPERATOR_COUNTRY", parse_country_code),
                "reconsent_grace_days": ("CONSENT_RECONSENT_GRACE_DAYS", int_between(1, 365)),
                "privacy_notice_url": ("CONSENT_PRIVACY_NOTICE_URL", parse_http_url),
                "purposes_file": ("CONSENT_PURPOSES_FILE", existing_file),
                "db_pool_max": ("CONSENT_DB_POOL_MAX", int_between(1, 200)),
                "cache_ttl": ("CONSENT_CACHE_TTL", int_between(0, 3600)),
                "check_cache_size": ("CONSENT_CHECK_CACHE_SIZE", int_between(0, 10_000_000)),
                "outbox_max_attempts": ("CONSENT_OUTBOX_MAX_ATTEMPTS", int_between(1, 50)),
                "outbox_lease": ("CONSENT_OUTBOX_LEASE", int_between(1, 3600)),
                "outbox_concurrency": ("CONSENT_OUTBOX_CONCURRENCY", int_between(1, 16)),
                "retention_denied": ("CONSENT_RETENTION_DENIED", int_between(0, 3650 * DAY)),
                "retention_expired": ("CONSENT_RETENTION_EXPIRED", int_between(0, 3650 * DAY)),
                "retention_withdrawn": (
                    "CONSENT_RETENTION_WITHDRAWN",
                    int_between(0, 3650 * DAY),
                ),
                "data_request_due_days": ("CONSENT_DATA_REQUEST_DUE_DAYS", int_between(1, 30)),
                "complaint_due_working_days": (
                    "CONSENT_COMPLAINT_DUE_WORKING_DAYS",
                    int_between(1, 20),
                ),
                "lapsing_notice_days": ("CONSENT_LAPSING_NOTICE_DAYS", int_between(0, 365)),
                "withdrawal_erases": ("CONSENT_WITHDRAWAL_ERASES", parse_bool),
                "trusted_proxies": ("CONSENT_TRUSTED_PROXIES", parse_networks),
                "trust_forwarded_for": ("CONSENT_TRUST_FORWARDED_FOR", parse_bool),
                **_schemas_dir_variable(),
                "worker_metrics_port": ("CONSENT_WORKER_METRICS_PORT", int_between(1, 65535)),
                "worker_metrics_host": ("CONSENT_WORKER_METRICS_HOST", non_empty),
                "metrics_multiprocess_dir": ("PROMETHEUS_MULTIPROC_DIR", existing_directory_name),
            }
        ),
    )
    if production:
        _require_operator_identity(reader)
    for name, url in (
        ("CONSENT_STAFF_JWKS", settings.staff_jwks),
        ("CONSENT_WEBHOOK_URL", settings.webhook_url),
        ("CONSENT_STAFF_OIDC_ISSUER", settings.staff_oidc_issuer),
    ):
        if url and "://" in url and not dev_mode and not encrypted_or_local(url):
            raise ConfigError(
                f"{name}: must be an https:// URL (http:// only to a loopback address, or "
                f"under `consent-service dev`), got http://{urlsplit(url).hostname}"
            )
    if settings.webhook_url and not settings.webhook_secret:
        raise ConfigError("CONSENT_WEBHOOK_SECRET: required when CONSENT_WEBHOOK_URL is set")
    staff = (settings.staff_issuer, settings.staff_audience, settings.staff_jwks)
    if any(staff) and not all(staff):
        raise ConfigError(
            "CONSENT_STAFF_ISSUER: set it together with CONSENT_STAFF_AUDIENCE and "
            "CONSENT_STAFF_JWKS (all three or none)"
        )
    if settings.staff_oidc_issuer and not settings.staff_oidc_client_id:
        raise ConfigError(
            "CONSENT_STAFF_OIDC_CLIENT_ID: required when CONSENT_STAFF_OIDC_ISSUER is set"
        )
    return settings


def _require_operator_identity(reader: _Reader) -> None:
    def real(parse: Callable[[str], Any]) -> Callable[[str], Any]:
        return lambda raw: parse(refuse_placeholder(raw))

    for name, parse in OPERATOR_VARIABLES.values():
        reader.required(name, real(parse))
    for name, parse in OPTIONAL_OPERATOR_VARIABLES.values():
        reader.fields({"value": (name, real(parse))})


def _smtp_config(reader: _Reader) -> SmtpConfig:
    """``CONSENT_SMTP_URL`` and the CA file its TLS is verified with."""
    smtp = reader.required("CONSENT_SMTP_URL", parse_smtp_url)
    return msgspec.structs.replace(
        smtp, **reader.fields({"ca_file": ("CONSENT_SMTP_CA_FILE", parse_ca_file)})
    )


# A field name -> (variable, parser); shared where two configurations read the same variable.
_Variables: TypeAlias = dict[str, tuple[str, Callable[[str], Any]]]


def _dev_token_variables() -> _Variables:
    return {
        "staff_issuer": ("CONSENT_STAFF_ISSUER", non_empty),
        "staff_audience": ("CONSENT_STAFF_AUDIENCE", non_empty),
        "dev_staff_key_file": ("CONSENT_DEV_STAFF_KEY_FILE", existing_file),
        "staff_token_max_lifetime": (
            "CONSENT_STAFF_TOKEN_MAX_LIFETIME",
            int_between(*STAFF_TOKEN_MAX_LIFETIME_RANGE),
        ),
    }


def _schemas_dir_variable() -> _Variables:
    return {"schemas_dir": ("CONSENT_SCHEMAS_DIR", existing_directory)}


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def required(self, name: str, parse: Callable[[str], T]) -> T:
        raw = self._env.get(name, "").strip()
        if not raw:
            raise ConfigError(f"{name}: required but not set")
        return self._parse(name, raw, parse)

    def fields(self, variables: _Variables) -> dict[str, Any]:
        """The parsed value of each variable that is set, by field name, in the given order."""
        values = {}
        for field, (name, parse) in variables.items():
            raw = self._env.get(name, "").strip()
            if raw:
                values[field] = self._parse(name, raw, parse)
        return values

    @staticmethod
    def _parse(name: str, raw: str, parse: Callable[[str], T]) -> T:
        try:
            return parse(raw)
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}") from None
        except (ValueError, OSError) as exc:
            raise ConfigError(f"{name}: {exc}") from None
