"""`consent-service dev`: everything a newcomer needs in one process.

A private PostgreSQL under the data directory (kept between runs), a mail catcher with a
web mailbox, a webhook receiver, generated keys, a development API key, and the API with an
embedded worker. One `dev` per data directory: a second one refuses (a lock file), so it
never stops the first one's database on its way out.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import signal
from collections.abc import Iterator
from email.headerregistry import Address
from pathlib import Path

import asyncpg
import uvicorn

from service.app import create_app
from service.clock import SystemClock
from service.db import api_keys
from service.db.databases import ensure_database
from service.db.migrate import migrate
from service.dev.identity_provider import DevIdentityProvider, IdentityProviderUnavailable
from service.dev.mailbox_page import mailbox_routes
from service.dev.mailcatcher import MailCatcher
from service.dev.pgcluster import ClusterError, LocalCluster, free_port, usable_directory
from service.dev.webhook_inbox import WEBHOOKS_PATH, WebhookInbox, new_secret, webhook_routes
from service.security.staff_tokens import dev_token_lifetime, jwks_document, mint_dev_token
from service.security.tokens import generate_signing_key_pem
from service.settings import Settings, load_settings

DEV_DATABASE = "consent"


def _secret_file(path: Path, content: bytes) -> Path:
    """Write a private (0600) file unless it exists: a key made once is kept between runs."""
    if not path.exists():
        _write_private(path, content)
    return path


def _write_private(path: Path, content: bytes) -> None:
    """Create ``path`` with mode 0600 from its first byte (never chmod-ed after)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def _replace_private(path: Path, content: bytes) -> None:
    """Replace ``path`` with a new private (0600) file holding ``content``."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    _write_private(temporary, content)
    os.replace(temporary, path)


async def dev_api_key(settings: Settings, remembered_key: str | None) -> str:
    """The remembered development key while it is still active, else a new one."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        if remembered_key and await api_keys.find_active_api_key(
            connection, api_keys.hash_api_key(remembered_key)
        ):
            return remembered_key
        key, _ = await api_keys.create_api_key(
            connection,
            name="development",
            scopes=list(api_keys.SCOPES),
            now=SystemClock().now(),
        )
    finally:
        await connection.close()
    return key


@contextlib.contextmanager
def one_dev_per_directory(data_dir: Path) -> Iterator[None]:
    """Hold ``dev.lock`` in the data directory while running; refuse when another ``dev`` holds
    it (the kernel releases the lock when that process ends, however it ends)."""
    lock_path = data_dir / "dev.lock"
    handle = lock_path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ClusterError(
                f"another consent-service dev ({holder}) is running with the data directory "
                f"{data_dir}; stop it first, or start this one with another --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - a comparison


def run_dev(*, host: str, port: int, data_dir: Path) -> None:
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with one_dev_per_directory(data_dir):
        _run_dev(host=host, port=port, data_dir=data_dir)


def _run_dev(*, host: str, port: int, data_dir: Path) -> None:
    env = dict(os.environ)
    cluster: LocalCluster | None = None
    catcher: MailCatcher | None = None
    inbox: WebhookInbox | None = None
    idp: DevIdentityProvider | None = None
    try:
        if not env.get("CONSENT_DATABASE_URL"):
            cluster = LocalCluster(usable_directory(data_dir / "pg"))
            cluster.start()
            # This process holds the data directory's lock, so a server found running there
            # is left over from a `dev` that died: this one stops it on its way out.
            cluster.started_here = True
            asyncio.run(ensure_database(cluster.admin_dsn, DEV_DATABASE))
            env["CONSENT_DATABASE_URL"] = cluster.dsn(DEV_DATABASE)
        if not env.get("CONSENT_SMTP_URL"):
            catcher = MailCatcher()
            catcher.start()
            env["CONSENT_SMTP_URL"] = catcher.url
        if not env.get("CONSENT_WEBHOOK_URL"):
            inbox = WebhookInbox(env.get("CONSENT_WEBHOOK_SECRET") or new_secret())
            env["CONSENT_WEBHOOK_URL"] = f"http://{_loopback(host)}:{port}{WEBHOOKS_PATH}"
            env["CONSENT_WEBHOOK_SECRET"] = inbox.secret
        # With a display name, as a real operator's would have: the operator's name if set.
        env.setdefault(
            "CONSENT_MAIL_FROM",
            str(
                Address(
                    display_name=env.get("CONSENT_OPERATOR_NAME") or "Consent service (dev)",
                    addr_spec="consent@localhost.localdomain",
                )
            ),
        )
        env.setdefault("CONSENT_PUBLIC_URL", f"http://{host}:{port}")
        env.setdefault(
            "CONSENT_SIGNING_KEY_FILE",
            str(_secret_file(data_dir / "signing-key.pem", generate_signing_key_pem())),
        )
        if not env.get("CONSENT_DATA_KEY"):
            key_file = _secret_file(data_dir / "data-key", base64.b64encode(os.urandom(32)))
            env["CONSENT_DATA_KEY"] = key_file.read_text().strip()
        env.setdefault("CONSENT_CONFIRMATION_DELAY", "60")
        if not env.get("CONSENT_STAFF_ISSUER"):
            staff_key = _secret_file(data_dir / "dev-staff-key.pem", generate_signing_key_pem())
            jwks_file = data_dir / "dev-staff-jwks.json"
            jwks_file.write_text(json.dumps(jwks_document(staff_key.read_bytes())))
            env.update(
                CONSENT_DEV_STAFF_KEY_FILE=str(staff_key),
                CONSENT_STAFF_ISSUER="consent-dev",
                CONSENT_STAFF_AUDIENCE="consent-service",
                CONSENT_STAFF_JWKS=str(jwks_file),
            )
        if not env.get("CONSENT_STAFF_OIDC_ISSUER"):
            idp = _start_identity_provider(env["CONSENT_PUBLIC_URL"])
            if idp is not None:
                env["CONSENT_STAFF_OIDC_ISSUER"] = idp.issuer
                env["CONSENT_STAFF_OIDC_CLIENT_ID"] = idp.client_id
                env.pop("CONSENT_STAFF_OIDC_CLIENT_SECRET", None)
        settings = load_settings(env, dev_mode=True)
        asyncio.run(migrate(settings.database_url, settings.schemas_dir))
        key_file = data_dir / "dev-api-key"
        remembered = key_file.read_text().strip() if key_file.exists() else None
        key = asyncio.run(dev_api_key(settings, remembered))
        if key != remembered:
            _replace_private(key_file, (key + "\n").encode())
        extra_routes: list[object] = []
        if catcher is not None:
            extra_routes += mailbox_routes(catcher.mailbox)
        if inbox is not None:
            extra_routes += webhook_routes(inbox)
        app = create_app(settings, extra_routes=extra_routes, embedded_worker=True)
        staff_token = (
            mint_dev_token(settings, sub="dev-support", roles=["support", "admin"])
            if settings.dev_staff_key_file
            else None
        )
        print(
            _banner(
                settings, key, staff_token, mailbox=catcher is not None, webhooks=inbox is not None
            ),
            flush=True,
        )
        # uvicorn re-raises SIGTERM once it has shut down; end through `finally` so the
        # private database and the mail catcher stop too.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                access_log=False,
                log_level="info",
                # uvicorn would otherwise rewrite the client address from X-Forwarded-For
                # sent from loopback; the app decides whom to believe (CONSENT_TRUSTED_PROXIES).
                proxy_headers=False,
            )
        )
        server.run()
    finally:
        if idp is not None:
            idp.stop()
        if catcher is not None:
            catcher.stop()
        if cluster is not None:
            cluster.stop()


def _start_identity_provider(public_url: str) -> DevIdentityProvider | None:
    """The development identity provider for the console, or None (said in one line)."""
    idp = DevIdentityProvider(free_port(), f"{public_url.rstrip('/')}/console/auth/callback")
    print("starting the development identity provider for the support console", flush=True)
    try:
        idp.start()
    except IdentityProviderUnavailable as exc:
        print(f"support console disabled: {exc}", flush=True)
        return None
    return idp


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _banner(
    settings: Settings, key: str, staff_token: str | None, *, mailbox: bool, webhooks: bool
) -> str:
    base = settings.public_url
    lines = [
        "",
        "consent-service dev is running",
        f"  API:       {base}   (interactive docs: {base}/schema)",
        f"  API key:   {key}",
        f"  Database:  {settings.database_url}",
    ]
    if staff_token:
        minutes = int(dev_token_lifetime(settings).total_seconds()) // 60
        lifetime = f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"
        lines.append(f"  Staff JWT: {staff_token}   (roles support, admin; {lifetime})")
    if settings.staff_oidc_issuer:
        lines.append(
            f"  Console:   {base}/console   (sign in as a support or an admin user at "
            f"{settings.staff_oidc_issuer})"
        )
    if mailbox:
        lines.append(f"  Mailbox:   {base}/dev/mail")
    if webhooks:
        lines.append(
            f"  Webhooks:  {base}{WEBHOOKS_PATH}   (signed with a secret made for this run)"
        )
    lines += [
        "  From another shell (outbox, keys, audit):",
        f"    CONSENT_DATABASE_URL={settings.database_url} consent-service outbox list",
        "  Try it:",
        f"    curl -s -X POST {base}/v1/consent-requests -H 'Authorization: Bearer {key}' \\",
        '      -H \'Content-Type: application/json\' -d \'{"subject_id": "child-1", '
        '"birth_date": "2015-04-01", "country": "SI", "guardian_email": "parent@example.com", '
        '"purposes": ["tutoring", "progress_reports"], "locale": "sl"}\'',
        "  then open the mailbox and follow the link.",
        "",
    ]
    return "\n".join(lines)
