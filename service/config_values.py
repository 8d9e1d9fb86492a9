"""How each configuration value is parsed and checked.

``service.settings`` alone reads the environment; these turn one raw value into a typed one or
raise :class:`ConfigError` saying what is wrong (the reader adds the variable's name).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import ssl
from collections.abc import Callable
from email.errors import ObsoleteHeaderDefect
from email.headerregistry import Address, HeaderRegistry
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


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


def non_empty(raw: str) -> str:
    return raw


def parse_bool(raw: str) -> bool:
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


def int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"expected a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def off_or(parse: Callable[[str], int]) -> Callable[[str], int]:
    """``parse``, or 0 for ``off`` (a feature switched off by a duration of zero)."""

    def parse_or_off(raw: str) -> int:
        return 0 if raw.lower() == "off" else parse(raw)

    return parse_or_off


def parse_postgres_dsn(raw: str) -> str:
    if urlsplit(raw).scheme not in {"postgres", "postgresql"}:
        raise ConfigError("expected a postgresql://user@host:port/database URL")
    return raw


def parse_public_url(raw: str) -> str:
    return parse_http_url(raw).rstrip("/")


def parse_http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"expected an http(s):// URL, got {raw!r}")
    return raw


def parse_jwks_location(raw: str) -> str:
    """A JWKS file path, or an http(s) URL."""
    if "://" in raw:
        return parse_http_url(raw)
    return raw


def encrypted_or_local(url: str) -> bool:
    """https, or http to a loopback address: traffic that never crosses a network in clear."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_email_address(raw: str) -> str:
    local, _, domain = raw.rpartition("@")
    if not local or not domain or " " in raw:
        raise ConfigError(f"expected an email address, got {raw!r}")
    return raw


def mailbox(raw: str) -> Address:
    """An address with an optional display name, as a From or Reply-To header holds it:
    ``Example Tutoring <consent@example.com>``, ``"Tutor (demo)" <consent@example.com>`` or a
    bare address. One mailbox only; no control characters (no header injection)."""
    if any(ord(char) < 32 or ord(char) == 127 for char in raw):
        raise ConfigError("must not contain control characters")
    header = HeaderRegistry()("from", raw)
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    invalid = [defect for defect in header.defects if not isinstance(defect, ObsoleteHeaderDefect)]
    if invalid or len(addresses) != 1:
        raise ConfigError(
            f"expected an email address, optionally with a display name "
            f"(Example Tutoring <consent@example.com>), got {raw!r}"
        )
    address = addresses[0]
    parse_email_address(address.addr_spec)
    if "." in address.domain or address.domain == "localhost":
        return Address(display_name=address.display_name, addr_spec=address.addr_spec)
    raise ConfigError(f"expected an email address with a domain, got {raw!r}")


def parse_mailbox(raw: str) -> str:
    """:func:`mailbox`, kept as its normal written form (display name quoted where needed)."""
    return str(mailbox(raw))


# Values a template or a tutorial leaves behind; an operator's real identity is none of them.
PLACEHOLDER_WORDS = (
    "changeme",
    "change-me",
    "change me",
    "todo",
    "tbd",
    "fixme",
    "placeholder",
    "lorem ipsum",
    "your company",
    "your name",
    "xxx",
)
# Domains reserved for documentation (RFC 2606) that no operator can be reached at.
PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net")
PLACEHOLDER_TOP_LEVEL_DOMAINS = ("invalid", "localhost")


def refuse_placeholder(raw: str) -> str:
    """A value shown to guardians as the operator's identity, refused when it is a placeholder:
    a template word, a ``<...>`` slot, or an address or link at a documentation domain."""
    lowered = raw.lower()
    for word in PLACEHOLDER_WORDS:
        if re.search(rf"(?<![a-z]){re.escape(word)}(?![a-z])", lowered):
            raise ConfigError(f"looks like a placeholder ({word!r}); set the operator's real value")
    if "<" in raw and ">" in raw:
        raise ConfigError("looks like a placeholder (<...>); set the operator's real value")
    for domain in _domains_in(lowered):
        reserved = any(domain == d or domain.endswith("." + d) for d in PLACEHOLDER_DOMAINS)
        if reserved or domain.split(".")[-1] in PLACEHOLDER_TOP_LEVEL_DOMAINS:
            raise ConfigError(f"{domain} is a placeholder domain; set the operator's real value")
    return raw


def _domains_in(text: str) -> list[str]:
    """Host names of the email addresses and links in ``text``."""
    found = [match.group(1) for match in _EMAIL_DOMAIN.finditer(text)]
    found += [urlsplit(match.group(0)).hostname or "" for match in _URL.finditer(text)]
    return [domain.rstrip(".") for domain in found if domain]


_EMAIL_DOMAIN = re.compile(r"@([a-z0-9.-]+)")
_URL = re.compile(r"https?://[^\s|,;]+")


class SupervisoryAuthority(msgspec.Struct, frozen=True, kw_only=True):
    """Where a guardian may complain: the authority's name, and its website if given."""

    name: str
    url: str | None = None


def parse_supervisory_authority(raw: str) -> SupervisoryAuthority:
    """``Name`` or ``Name | https://website``."""
    name, separator, url = (part.strip() for part in raw.partition("|"))
    if not name:
        raise ConfigError("expected the authority's name, optionally followed by | and its website")
    if not separator:
        return SupervisoryAuthority(name=name)
    return SupervisoryAuthority(name=name, url=parse_http_url(url))


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
        options["starttls"] = parse_starttls(query["starttls"])
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


def parse_starttls(raw: str) -> StartTls:
    """``auto``, ``required`` or ``off``; the words ``parse_bool`` knows mean required or off."""
    try:
        return StartTls(raw.lower())
    except ValueError:
        pass
    try:
        return StartTls.REQUIRED if parse_bool(raw) else StartTls.OFF
    except ConfigError:
        raise ConfigError(f"starttls: expected auto, true or off, got {raw!r}") from None


def parse_ca_file(raw: str) -> str:
    """A PEM file of CA certificates that a TLS context can load (checked at start)."""
    path = existing_file(raw)
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:
        raise ConfigError(f"no PEM CA certificate could be read from {raw}") from None
    return path


def read_signing_key(raw: str) -> bytes:
    path = Path(raw)
    if not path.is_file():
        raise ConfigError(f"no such file: {raw}")
    pem = path.read_bytes()
    load_ed25519_private_key(pem, raw)  # the reader names the variable; this names the file
    return pem


def load_ed25519_private_key(pem: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{source}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{source}: not an Ed25519 private key")
    return key


def parse_data_key(raw: str) -> bytes:
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("not valid base64") from None
    if len(key) != 32:
        raise ConfigError(f"must decode to 32 bytes, got {len(key)}")
    return key


def parse_webhook_secret(raw: str) -> str:
    if not raw.startswith("whsec_"):
        raise ConfigError("must start with whsec_")
    try:
        secret = base64.b64decode(raw.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("the part after whsec_ is not valid base64") from None
    if len(secret) < 16:
        raise ConfigError("the secret must be at least 16 bytes")
    return raw


def existing_file(raw: str) -> str:
    if not Path(raw).is_file():
        raise ConfigError(f"no such file: {raw}")
    return raw


def existing_directory(raw: str) -> Path:
    if not Path(raw).is_dir():
        raise ConfigError(f"no such directory: {raw}")
    return Path(raw)


def existing_directory_name(raw: str) -> str:
    return str(existing_directory(raw))


def parse_log_level(raw: str) -> str:
    level = raw.lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


def parse_country_code(raw: str) -> str:
    """An ISO 3166-1 alpha-2 country code, such as ``SI``."""
    code = raw.strip().upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        raise ConfigError(f"expected a two-letter country code such as SI, got {raw!r}")
    return code
