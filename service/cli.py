"""The ``consent-service`` command line."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import asyncpg
from granian.constants import Interfaces, Loops
from granian.log import LogLevels
from granian.server import Server as Granian
from litestar import Litestar

from service.clock import SystemClock
from service.consent.reconsent import ReconsentSummary, open_reconsents
from service.consent.runtime import Runtime
from service.db import api_keys, notice_versions
from service.db.audit_events import chain_hash_at, chain_head, record_event, verify_chain
from service.db.connection import Connection
from service.db.invalidation import publish
from service.db.migrate import MigrationError, migrate
from service.db.notice_versions import StoredNotice
from service.db.outbox import OutboxListing, list_messages, requeue_dead
from service.db.pool import create_pool, pool_stats
from service.dev.pgcluster import ClusterError
from service.i18n import DEFAULT_LOCALE, LOCALES
from service.metrics import Metrics, metrics_server
from service.security.tokens import generate_signing_key_pem
from service.settings import (
    ConfigError,
    DevTokenConfig,
    LoggingConfig,
    MigrationConfig,
    Settings,
    database_url_from,
    load_settings,
    schemas_dir_from,
)
from service.states import OutboxStatus

logger = logging.getLogger("service.cli")
QUIET_LIBRARY_LOGGERS = ("httpx", "httpcore")


class CommandError(Exception):
    """A command cannot run; the message is the one line shown to the operator."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# `audit verify`: 1 the chain is broken, 2 --expect-head is not a head at all (a usage error,
# nothing was checked), 3 the chain no longer holds that head (events removed or rewritten).
AUDIT_BROKEN = 1
AUDIT_MALFORMED_HEAD = 2
AUDIT_HEAD_MISMATCH = 3
CHAIN_HASH_HEX_LENGTH = 64


def configure_logging(config: LoggingConfig) -> None:
    logging.basicConfig(
        level=config.level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd (the dev mail catcher) logs every SMTP conversation, addresses included.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO (httpcore its steps at DEBUG): a webhook or
    # JWKS URL's credentials and query tokens would reach the log. Their warnings still do.
    for name in QUIET_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def settings_from_env() -> Settings:
    """The configuration of the production roles: the operator's identity must be real."""
    return load_settings(os.environ, production=True)


def app_from_env() -> Litestar:
    """ASGI application factory for ``serve`` (each worker process builds its own app).

    The worker processes of ``serve --workers N`` start afresh, without ``main``'s logging
    setup, so the factory applies it too (applying it twice changes nothing).
    """
    from service.app import create_app

    configure_logging(LoggingConfig.from_env(os.environ))
    return create_app(settings_from_env())


# ---- commands -----------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> None:
    settings = settings_from_env()  # fail before forking workers, with one clear line
    for note in settings.deprecations:
        logger.warning("%s", note)
    if args.workers > 1:
        share_metrics_between_workers()
    # Each worker starts afresh (as uvicorn's did), not as a fork of this process: it must
    # import prometheus_client after PROMETHEUS_MULTIPROC_DIR is set, and inherit no state.
    multiprocessing.set_start_method("spawn", force=True)
    # Granian, not uvicorn: chosen by measurement (README, Performance and scaling). It reads
    # no X-Forwarded-For: the app believes only CONSENT_TRUSTED_PROXIES.
    Granian(
        "service.cli:app_from_env",
        factory=True,
        address=args.host,
        port=args.port,
        workers=args.workers,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,
        websockets=False,
        # a worker that dies is replaced, as uvicorn's supervisor did
        respawn_failed_workers=True,
        log_access=False,  # request paths carry guardian link tokens; metrics cover traffic
        log_level=LogLevels(LoggingConfig.from_env(os.environ).level),
    ).serve()


def share_metrics_between_workers() -> None:
    """Have the worker processes write their metrics to a private directory, removed at exit,
    so that whichever answers /metrics reports all of them. Set before Granian starts them:
    prometheus_client reads the variable when it is imported."""
    directory = tempfile.mkdtemp(prefix="consent-metrics-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def cmd_worker(_: argparse.Namespace) -> None:
    from service.worker import Worker

    settings = settings_from_env()
    metrics = Metrics()

    async def run() -> None:
        runtime = Runtime(settings, SystemClock())
        pool = await create_pool(settings)
        metrics.watch_pool(lambda: pool_stats(pool))
        worker = Worker(runtime, pool, metrics)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        logger.info("worker started")
        try:
            await worker.run_forever(stop)
        finally:
            await worker.close()
            await pool.close()

    with metrics_server(metrics, settings.worker_metrics_host, settings.worker_metrics_port):
        asyncio.run(run())


def cmd_migrate(_: argparse.Namespace) -> None:
    config = MigrationConfig.from_env(os.environ)
    applied = asyncio.run(migrate(config.database_url, config.schemas_dir))
    print(f"applied {', '.join(applied)}" if applied else "database schema is current")


async def _with_connection(
    action: Callable[[Connection], Coroutine[Any, Any, Any]],
) -> Any:
    connection = await asyncpg.connect(database_url_from(os.environ), timeout=10)
    try:
        return await action(connection)
    finally:
        await connection.close()


def cmd_keys_create(args: argparse.Namespace) -> None:
    async def action(connection: Connection) -> tuple[str, uuid.UUID]:
        now = SystemClock().now()
        async with connection.transaction():
            key, record = await api_keys.create_api_key(
                connection, name=args.name, scopes=args.scope, now=now
            )
            await record_event(
                connection,
                actor="cli",
                action="api_key.created",
                occurred_at=now,
                details={"key_id": str(record.id), "name": record.name, "scopes": record.scopes},
            )
        return key, record.id

    try:
        key, key_id = asyncio.run(_with_connection(action))
    except ValueError as exc:
        raise CommandError(f"--scope: {exc}") from None
    # the key alone on stdout, so `KEY=$(consent-service keys create ...)` captures just it
    print(key)
    print(f"key id {key_id} (keys list, keys revoke)", file=sys.stderr)


def cmd_keys_list(_: argparse.Namespace) -> None:
    keys = asyncio.run(_with_connection(api_keys.list_api_keys))
    print("ID  PREFIX  NAME  SCOPES  STATE")
    if not keys:
        print("none")
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        print(f"{key.id}  {key.key_prefix}…  {key.name}  {','.join(key.scopes)}  {state}")


def cmd_keys_revoke(args: argparse.Namespace) -> None:
    try:
        key_id = uuid.UUID(args.id)
    except ValueError:
        raise CommandError(f"not a key id: {args.id!r} (see consent-service keys list)") from None

    async def action(connection: Connection) -> bool:
        now = SystemClock().now()
        async with connection.transaction():
            revoked = await api_keys.revoke_api_key(connection, key_id, now)
            if revoked:
                await publish(connection, "api_keys")
                await record_event(
                    connection,
                    actor="cli",
                    action="api_key.revoked",
                    occurred_at=now,
                    details={"key_id": str(key_id)},
                )
        return revoked

    if not asyncio.run(_with_connection(action)):
        raise CommandError(f"no active API key with id {key_id}")
    print(f"revoked {key_id}")


def cmd_keys_signing_key(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if out.exists():
        raise CommandError(f"{out} exists; refusing to overwrite a signing key")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(generate_signing_key_pem())
    print(str(out))


def cmd_openapi(args: argparse.Namespace) -> None:
    from service.openapi_export import write_openapi

    # create_app reads the migration files: the versions /readyz expects.
    path = write_openapi(Path(args.output), schemas_dir_from(os.environ))
    print(str(path))


def cmd_retention_policy(args: argparse.Namespace) -> None:
    from service.consent.purposes import load_catalogue
    from service.consent.retention import retention_policy
    from service.consent.retention_document import policy_document, render_markdown

    settings = settings_from_env()
    policy = retention_policy(settings, load_catalogue(settings.purposes_file))
    document = policy_document(policy, locale=args.locale, operator_name=settings.operator_name)
    sys.stdout.write(render_markdown(document))


def cmd_audit_verify(args: argparse.Namespace) -> None:
    expected: tuple[int, str] | None = None
    if args.expect_head:
        expected = _parse_head(args.expect_head)

    async def action(connection: Connection) -> tuple[int, Any, Any, bytes | None]:
        checked, broken = await verify_chain(connection)
        anchored = await chain_hash_at(connection, expected[0]) if expected else None
        return checked, broken, await chain_head(connection), anchored

    checked, broken, head, anchored = asyncio.run(_with_connection(action))
    if broken is not None:
        raise CommandError(
            f"audit chain broken at event {broken.event_id}: {broken.problem} "
            f"({checked} earlier events verified)",
            exit_code=AUDIT_BROKEN,
        )
    if expected is not None and (anchored is None or anchored.hex() != expected[1]):
        raise CommandError(
            f"audit chain does not contain the recorded head event {expected[0]} with that "
            "hash: events were removed or rewritten",
            exit_code=AUDIT_HEAD_MISMATCH,
        )
    print(f"audit chain verified: {checked} events")
    if head is not None:
        print(f"head: {head[0]}:{head[1].hex()}  (keep it; pass it later as --expect-head)")


def _parse_head(text: str) -> tuple[int, str]:
    """An ``EVENT_ID:CHAIN_HASH`` printed by an earlier run; anything else is a usage error."""
    event, _, digest = text.strip().partition(":")
    digest = digest.lower()
    if not event.isdigit() or len(digest) != CHAIN_HASH_HEX_LENGTH or not _is_hex(digest):
        raise CommandError(
            f"--expect-head: not a head: expected EVENT_ID:HASH with {CHAIN_HASH_HEX_LENGTH} "
            "hex digits, as printed by an earlier `audit verify`",
            exit_code=AUDIT_MALFORMED_HEAD,
        )
    return int(event), digest


def _is_hex(text: str) -> bool:
    return all(character in "0123456789abcdef" for character in text)


def cmd_staff_token(args: argparse.Namespace) -> None:
    from service.security.staff_tokens import mint_dev_token

    print(mint_dev_token(DevTokenConfig.from_env(os.environ), sub=args.sub, roles=args.role))


def cmd_outbox_list(args: argparse.Namespace) -> None:
    async def action(connection: Connection) -> list[OutboxListing]:
        return await list_messages(connection, args.status)

    messages = asyncio.run(_with_connection(action))
    print("ID  KIND  TOPIC  STATUS  ATTEMPTS  NEXT  LAST_ERROR")
    if not messages:
        print("none")
    for message in messages:
        print(
            f"{message.id}  {message.kind:<7} {message.topic:<22} {message.status:<8} "
            f"attempts={message.attempts}  next={message.next_attempt_at:%Y-%m-%d %H:%M:%S}  "
            f"{message.last_error or ''}"
        )


def cmd_outbox_retry(args: argparse.Namespace) -> None:
    try:
        item_id = uuid.UUID(args.id)
    except ValueError:
        raise CommandError(f"not an outbox id: {args.id!r}") from None

    async def action(connection: Connection) -> str | None:
        return await requeue_dead(connection, item_id, SystemClock().now())

    outcome = asyncio.run(_with_connection(action))
    if outcome is None:
        raise CommandError(f"no dead outbox message with id {item_id}")
    print(f"{item_id} queued for delivery again")


def cmd_notice_show(args: argparse.Namespace) -> None:
    async def action(connection: Connection) -> StoredNotice | None:
        return await notice_versions.find(connection, args.version)

    stored = asyncio.run(_with_connection(action))
    if stored is None or (args.locale and stored.locale != args.locale):
        where = f" in locale {args.locale!r}" if args.locale else ""
        raise CommandError(
            f"no notice version {args.version!r}{where} was ever shown "
            "(versions are the policy_version of a request or consent)"
        )
    sys.stdout.write(stored.text)


def cmd_reconsent(args: argparse.Namespace) -> None:
    settings = settings_from_env()

    async def run() -> ReconsentSummary:
        runtime = Runtime(settings, SystemClock())
        connection = await asyncpg.connect(settings.database_url, timeout=10)
        try:
            return await open_reconsents(connection, runtime, dry_run=args.dry_run)
        finally:
            await connection.close()

    summary = asyncio.run(run())
    verb = "would open" if args.dry_run else "opened"
    print(
        f"{verb} {summary.opened} re-consent requests "
        f"({summary.outdated} live consents on an older notice; "
        f"{summary.already_pending} with a request pending already, "
        f"{summary.no_address} without a guardian address)"
    )


def cmd_dev(args: argparse.Namespace) -> None:
    try:
        from service.dev.server import run_dev
    except ImportError as exc:  # the container image installs no `dev` extra
        raise CommandError(
            f"dev needs the development extra: pip install '.[dev]' ({exc})"
        ) from None
    run_dev(host=args.host, port=args.port, data_dir=Path(args.data_dir))


# ---- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consent-service",
        description="Parental-consent verification service. Configuration: CONSENT_* variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP API (production)")
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a server in a container
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="deliver the outbox and run expiry sweeps")
    worker.set_defaults(handler=cmd_worker)

    dev = commands.add_parser(
        "dev", help="API + worker + private database + mail catcher, for development"
    )
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--data-dir", default=".data", help="where dev keeps its database and keys")
    dev.set_defaults(handler=cmd_dev)

    migrate_cmd = commands.add_parser("migrate", help="apply database migrations (schemas/)")
    migrate_cmd.set_defaults(handler=cmd_migrate)

    keys = commands.add_parser("keys", help="API keys and signing keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    create = key_commands.add_parser("create", help="create an API key and print it (once)")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scope",
        action="extend",
        nargs="+",
        required=True,
        choices=api_keys.SCOPES,
        help="one or more of: consent:request, consent:check, subject:erase (erase a child)",
    )
    create.set_defaults(handler=cmd_keys_create)
    list_cmd = key_commands.add_parser("list", help="list API keys (never the keys themselves)")
    list_cmd.set_defaults(handler=cmd_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke an API key by id")
    revoke.add_argument("id")
    revoke.set_defaults(handler=cmd_keys_revoke)
    signing = key_commands.add_parser("signing-key", help="write a new Ed25519 signing key (PEM)")
    signing.add_argument("--out", required=True)
    signing.set_defaults(handler=cmd_keys_signing_key)

    openapi = commands.add_parser("openapi", help="write the OpenAPI document")
    openapi.add_argument("--output", default="openapi/openapi.json")
    openapi.set_defaults(handler=cmd_openapi)

    retention = commands.add_parser(
        "retention-policy",
        help="print the written retention policy (Markdown), from the settings the worker applies",
    )
    retention.add_argument("--locale", choices=LOCALES, default=DEFAULT_LOCALE)
    retention.set_defaults(handler=cmd_retention_policy)

    staff_token = commands.add_parser(
        "staff-token", help="mint a staff JWT with the development key (development and tests)"
    )
    staff_token.add_argument("--sub", required=True, help="the staff member's name")
    staff_token.add_argument(
        "--role", action="append", required=True, choices=("support", "admin"), help="repeatable"
    )
    staff_token.set_defaults(handler=cmd_staff_token)

    outbox_cmd = commands.add_parser("outbox", help="inspect and replay outbox messages")
    outbox_commands = outbox_cmd.add_subparsers(
        dest="outbox_command", required=True, metavar="OUTBOX_COMMAND"
    )
    outbox_list = outbox_commands.add_parser("list", help="list messages (default: dead ones)")
    outbox_list.add_argument(
        "--status",
        action="append",
        type=OutboxStatus,
        choices=list(OutboxStatus),
        help="repeatable; default dead",
    )
    outbox_list.set_defaults(handler=cmd_outbox_list)
    retry = outbox_commands.add_parser("retry", help="deliver a dead message again (same id)")
    retry.add_argument("id")
    retry.set_defaults(handler=cmd_outbox_retry)

    notice = commands.add_parser("notice", help="the notices guardians were shown")
    notice_commands = notice.add_subparsers(
        dest="notice_command", required=True, metavar="NOTICE_COMMAND"
    )
    show = notice_commands.add_parser(
        "show", help="print the exact notice text of a version (a consent's policy_version)"
    )
    show.add_argument("version", metavar="VERSION")
    show.add_argument("--locale", help="the notice's language (part of the version already)")
    show.set_defaults(handler=cmd_notice_show)

    reconsent = commands.add_parser(
        "reconsent",
        help="ask the guardians of live consents on an older notice to consent again",
    )
    reconsent.add_argument(
        "--dry-run", action="store_true", help="count the requests it would open; change nothing"
    )
    reconsent.set_defaults(handler=cmd_reconsent)

    audit = commands.add_parser("audit", help="audit trail tools")
    audit_commands = audit.add_subparsers(
        dest="audit_command", required=True, metavar="AUDIT_COMMAND"
    )
    verify = audit_commands.add_parser("verify", help="verify the audit hash chain")
    verify.add_argument(
        "--expect-head",
        metavar="EVENT_ID:HASH",
        help=(
            "a head printed by an earlier run: fail unless that event is still in the chain "
            "(exit 1: chain broken, 2: malformed head, 3: the chain no longer holds that head)"
        ),
    )
    verify.set_defaults(handler=cmd_audit_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if getattr(args, "status", 0) is None:
        args.status = [OutboxStatus.DEAD]
    try:
        configure_logging(LoggingConfig.from_env(os.environ))
        args.handler(args)
    except (ConfigError, CommandError, MigrationError, ClusterError) as exc:
        print(f"consent-service: {exc}", file=sys.stderr)
        if isinstance(exc, CommandError):
            sys.exit(exc.exit_code)
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"consent-service: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
