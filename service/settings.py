"""Settings read once from ``CONSENT_*`` environment variables; nothing else reads them.

Every problem is reported as :class:`ConfigError` whose message names the variable, so a
misconfigured replica stops at start with one line instead of failing on its first request.
Commands that need only part of the configuration (``migrate``, ``keys``, ``staff-token``,
``audit verify``) read only that part, so they run without the rest. Each default is written
once: on its field.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import ssl
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeAlias, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

T = TypeVar("T")
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

DAY = 86_400
# The operator's own minimum age without a guardian (its privacy policy); the age gate applies
# the higher of this and the child's country's age.
OPERATOR_MIN_AGE_DEFAULT = 15
OPERATOR_MIN_AGE_RANGE = range(13, 19)
REPOSITORY_SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# The longest staff token (exp - iat) the service accepts: a working day and then some.
STAFF_TOKEN_MAX_LIFETIME_DEFAULT = 12 * 3600
STAFF_TOKEN_MAX_LIFETIME_RANGE = (300, 7 * DAY)
# Like `serve --host`: the worker's metrics are scraped from outside its container.
WORKER_METRICS_HOST_DEFAULT = "0.0.0.0"  # noqa: S104


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""


class StartTls(StrEnum):
    """When an ``smtp://`` connection is upgraded with STARTTLS (``?starttls=``)."""

    # Whenever the server offers it; required when credentials are configured, so a password
    # is never sent in clear. Unset means this.
    AUTO = "auto"
    # Always: a server that does not offer STARTTLS gets nothing (``true``).
    REQUIRED = "required"
    # Never, credentials included: the explicit opt-out for a local relay (``off``).
    OFF = "off"


class SmtpConfig(msgspec.Struct, frozen=True, kw_only=True):
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: StartTls = StartTls.AUTO
    use_tls: bool = False
    timeout: float = 10.0
    # PEM file of the CAs the server's certificate must chain to, instead of the system's.
    ca_file: str | None = None


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str
    smtp: SmtpConfig
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
    webhook_url: str | None = None
    webhook_secret: str | None = None
    confirmation_delay: int = DAY
    request_ttl: int = 7 * DAY
    consent_max_validity: int = 365 * DAY
    token_audience: str = "consent-clients"  # noqa: S105 - an audience name, not a secret
    operator_name: str = "Example Tutoring"
    privacy_notice_url: str = "https://example.invalid/privacy"
    purposes_file: str | None = None
    db_pool_max: int = 10
    # Seconds a replica may answer from its cache (API keys) without reading the database.
    cache_ttl: int = 60
    outbox_max_attempts: int = 8
    # Seconds a worker holds a message it claimed; renewed while the send is in progress, so a
    # crashed worker's message is sent again by another one this soon.
    outbox_lease: int = 15
    retention_denied: int = 30 * DAY
    retention_expired: int = 30 * DAY
    retention_withdrawn: int = 90 * DAY
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
        return cls(**_Reader(env).fields({"level": ("CONSENT_LOG_LEVEL", _parse_log_level)}))


def database_url_from(env: Mapping[str, str]) -> str:
    """``CONSENT_DATABASE_URL`` alone, for the commands that need nothing else."""
    return _Reader(env).required("CONSENT_DATABASE_URL", _parse_postgres_dsn)


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


def load_settings(env: Mapping[str, str], *, dev_mode: bool = False) -> Settings:
    """Build settings from an environment mapping, raising ConfigError naming the variable."""
    reader = _Reader(env)
    settings = Settings(
        database_url=database_url_from(env),
        smtp=_smtp_config(reader),
        mail_from=reader.required("CONSENT_MAIL_FROM", _parse_email_address),
        public_url=reader.required("CONSENT_PUBLIC_URL", _parse_public_url),
        signing_key_pem=reader.required("CONSENT_SIGNING_KEY_FILE", _read_signing_key),
        data_key=reader.required("CONSENT_DATA_KEY", _parse_data_key),
        dev_mode=dev_mode,
        # Unset variables are left out, so every field keeps the default written on it.
        **reader.fields(
            {
                "min_age": (
                    "CONSENT_MIN_AGE",
                    _int_between(OPERATOR_MIN_AGE_RANGE.start, OPERATOR_MIN_AGE_RANGE.stop - 1),
                ),
                **_dev_token_variables(),
                "staff_jwks": ("CONSENT_STAFF_JWKS", _parse_jwks_location),
                "webhook_url": ("CONSENT_WEBHOOK_URL", _parse_http_url),
                "webhook_secret": ("CONSENT_WEBHOOK_SECRET", _parse_webhook_secret),
                "confirmation_delay": ("CONSENT_CONFIRMATION_DELAY", _int_between(0, 30 * DAY)),
                "request_ttl": ("CONSENT_REQUEST_TTL", _int_between(600, 30 * DAY)),
                "consent_max_validity": (
                    "CONSENT_MAX_VALIDITY",
                    _int_between(DAY, 5 * 365 * DAY),
                ),
                "token_audience": ("CONSENT_TOKEN_AUDIENCE", _non_empty),
                "operator_name": ("CONSENT_OPERATOR_NAME", _non_empty),
                "privacy_notice_url": ("CONSENT_PRIVACY_NOTICE_URL", _parse_http_url),
                "purposes_file": ("CONSENT_PURPOSES_FILE", _existing_file),
                "db_pool_max": ("CONSENT_DB_POOL_MAX", _int_between(1, 200)),
                "cache_ttl": ("CONSENT_CACHE_TTL", _int_between(0, 3600)),
                "outbox_max_attempts": ("CONSENT_OUTBOX_MAX_ATTEMPTS", _int_between(1, 50)),
                "outbox_lease": ("CONSENT_OUTBOX_LEASE", _int_between(1, 3600)),
                "retention_denied": ("CONSENT_RETENTION_DENIED", _int_between(0, 3650 * DAY)),
                "retention_expired": ("CONSENT_RETENTION_EXPIRED", _int_between(0, 3650 * DAY)),
                "retention_withdrawn": (
                    "CONSENT_RETENTION_WITHDRAWN",
                    _int_between(0, 3650 * DAY),
                ),
                "trusted_proxies": ("CONSENT_TRUSTED_PROXIES", parse_networks),
                "trust_forwarded_for": ("CONSENT_TRUST_FORWARDED_FOR", _parse_bool),
                **_schemas_dir_variable(),
                "worker_metrics_port": ("CONSENT_WORKER_METRICS_PORT", _int_between(1, 65535)),
                "worker_metrics_host": ("CONSENT_WORKER_METRICS_HOST", _non_empty),
                "metrics_multiprocess_dir": ("PROMETHEUS_MULTIPROC_DIR", _existing_directory_name),
            }
        ),
    )
    for name, url in (
        ("CONSENT_STAFF_JWKS", settings.staff_jwks),
        ("CONSENT_WEBHOOK_URL", settings.webhook_url),
    ):
        if url and "://" in url and not dev_mode and not _encrypted_or_local(url):
            raise ConfigError(
                f"{name}: must be an https:// URL (http:// only to a loopback address, or "
                f"under `consent-service dev`), got http://{urlsplit(url).hostname}"
            )
    if settings.webhook_url and not settings.webhook_secret:
        raise ConfigError("CONSENT_WEBHOOK_SECRET: required when CONSENT_WEBHOOK_URL is set")
    staff = (settings.staff_issuer, settings.staff_audience, settings.staff_jwks)
    if any(staff) and not all(staff):
        raise ConfigError(
            "CONSENT_STAFF_ISSUER: CONSENT_STAFF_ISSUER, CONSENT_STAFF_AUDIENCE and "
            "CONSENT_STAFF_JWKS must be set together"
        )
    return settings


def _smtp_config(reader: _Reader) -> SmtpConfig:
    """``CONSENT_SMTP_URL`` and the CA file its TLS is verified with."""
    smtp = reader.required("CONSENT_SMTP_URL", parse_smtp_url)
    return msgspec.structs.replace(
        smtp, **reader.fields({"ca_file": ("CONSENT_SMTP_CA_FILE", _parse_ca_file)})
    )


# A field name -> (variable, parser); shared where two configurations read the same variable.
_Variables: TypeAlias = dict[str, tuple[str, Callable[[str], Any]]]


def _dev_token_variables() -> _Variables:
    return {
        "staff_issuer": ("CONSENT_STAFF_ISSUER", _non_empty),
        "staff_audience": ("CONSENT_STAFF_AUDIENCE", _non_empty),
        "dev_staff_key_file": ("CONSENT_DEV_STAFF_KEY_FILE", _existing_file),
        "staff_token_max_lifetime": (
            "CONSENT_STAFF_TOKEN_MAX_LIFETIME",
            _int_between(*STAFF_TOKEN_MAX_LIFETIME_RANGE),
        ),
    }


def _schemas_dir_variable() -> _Variables:
    return {"schemas_dir": ("CONSENT_SCHEMAS_DIR", _existing_directory)}


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


def _non_empty(raw: str) -> str:
    return raw


def _parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"expected true or false, got {raw!r}")


def parse_networks(raw: str) -> tuple[IPNetwork, ...]:
    """``10.0.0.1, 10.8.0.0/16, fd00::/8``: addresses and CIDR blocks, comma-separated."""
    networks = []
    for part in raw.split(","):
        text = part.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text))
        except ValueError as exc:
            raise ConfigError(
                f"expected IP addresses or CIDR blocks, comma-separated: {exc}"
            ) from None
    return tuple(networks)


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"expected a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _parse_postgres_dsn(raw: str) -> str:
    if urlsplit(raw).scheme not in {"postgres", "postgresql"}:
        raise ConfigError("expected a postgresql://user@host:port/database URL")
    return raw


def _parse_public_url(raw: str) -> str:
    return _parse_http_url(raw).rstrip("/")


def _parse_http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"expected an http(s):// URL, got {raw!r}")
    return raw


def _parse_jwks_location(raw: str) -> str:
    """A JWKS file path, or an http(s) URL."""
    if "://" in raw:
        return _parse_http_url(raw)
    return raw


def _encrypted_or_local(url: str) -> bool:
    """https, or http to a loopback address: traffic that never crosses a network in clear."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_email_address(raw: str) -> str:
    local, _, domain = raw.rpartition("@")
    if not local or not domain or " " in raw:
        raise ConfigError(f"expected an email address, got {raw!r}")
    return raw


def parse_smtp_url(raw: str) -> SmtpConfig:
    """Parse ``smtp://user:pass@host:port?starttls=true`` (``smtps://`` for implicit TLS).

    ``starttls`` unset (or ``auto``): STARTTLS whenever the server offers it, and required when
    the URL has credentials; ``true`` (or ``required``): always required; ``off`` (or
    ``false``): never, the opt-out for a local relay that has no TLS.
    """
    parts = urlsplit(raw)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ConfigError("expected smtp://user:pass@host:port?starttls=true")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("the port is not a number") from None
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    use_tls = parts.scheme == "smtps"
    # Only what the URL says: every other field keeps the default written on it.
    options: dict[str, Any] = {}
    if "starttls" in query:
        options["starttls"] = _parse_starttls(query["starttls"])
        if use_tls and options["starttls"] is not StartTls.AUTO:
            raise ConfigError("smtps:// is TLS from the first byte; starttls= does not apply")
    if "timeout" in query:
        options["timeout"] = float(query["timeout"])
    return SmtpConfig(
        host=parts.hostname,
        port=port or (465 if use_tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=use_tls,
        **options,
    )


def _parse_starttls(raw: str) -> StartTls:
    """``auto``, ``required`` or ``off``; the words ``_parse_bool`` knows mean required or off."""
    try:
        return StartTls(raw.lower())
    except ValueError:
        pass
    try:
        return StartTls.REQUIRED if _parse_bool(raw) else StartTls.OFF
    except ConfigError:
        raise ConfigError(f"starttls: expected auto, true or off, got {raw!r}") from None


def _parse_ca_file(raw: str) -> str:
    """A PEM file of CA certificates that a TLS context can load (checked at start)."""
    path = _existing_file(raw)
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:
        raise ConfigError(f"no PEM CA certificate could be read from {raw}") from None
    return path


def _read_signing_key(raw: str) -> bytes:
    path = Path(raw)
    if not path.is_file():
        raise ConfigError(f"no such file: {raw}")
    pem = path.read_bytes()
    load_ed25519_private_key(pem, "CONSENT_SIGNING_KEY_FILE")
    return pem


def load_ed25519_private_key(pem: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{source}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{source}: not an Ed25519 private key")
    return key


def _parse_data_key(raw: str) -> bytes:
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("not valid base64") from None
    if len(key) != 32:
        raise ConfigError(f"must decode to 32 bytes, got {len(key)}")
    return key


def _parse_webhook_secret(raw: str) -> str:
    if not raw.startswith("whsec_"):
        raise ConfigError("must start with whsec_")
    try:
        secret = base64.b64decode(raw.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("the part after whsec_ is not valid base64") from None
    if len(secret) < 16:
        raise ConfigError("the secret must be at least 16 bytes")
    return raw


def _existing_file(raw: str) -> str:
    if not Path(raw).is_file():
        raise ConfigError(f"no such file: {raw}")
    return raw


def _existing_directory(raw: str) -> Path:
    if not Path(raw).is_dir():
        raise ConfigError(f"no such directory: {raw}")
    return Path(raw)


def _existing_directory_name(raw: str) -> str:
    return str(_existing_directory(raw))


def _parse_log_level(raw: str) -> str:
    level = raw.lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level
