"""`make bench-scale`: the hot paths and the worker's sweeps cost the same at any table size.

For each size in BENCH_SCALE_ROWS (consents, comma-separated; default 10000,10000000) it makes a
fresh database on a private PostgreSQL (or on CONSENT_DATABASE_URL's server, which must let us
create databases as a superuser), loads that many consents with their requests and audit events
(``tests/bench_data.py``, ``generate_series``) plus a fixed number of rows every sweep has
to handle (DUE of each: overdue requests, lapsed consents, consents and requests past their
retention, due emails), then measures through the service's own functions:

- the check's database read (``consents.check_row``) for granted, ended and unknown subjects
  picked at random, and the cached check (``CheckRows.read`` on a hit);
- request creation (``requests.create_request``, rolled back);
- each sweep of ``Worker.sweep`` and the outbox claim, in a transaction rolled back after each
  repetition, so every repetition finds the same DUE rows;

and prints PostgreSQL's plan of every statement they ran (``auto_explain``, with ANALYZE),
then a table of the medians side by side. BENCH_SCALE_REPEAT (default 20) repetitions each;
BENCH_SCALE_DUE (default 100) rows due for each sweep; BENCH_SCALE_SHARED_BUFFERS (default 4GB)
the private server's shared buffers.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import re
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import asyncpg

from service.consent import retention, sweeps
from service.consent.requests import NewRequest, create_request
from service.consent.runtime import Runtime
from service.db import api_keys, consents
from service.db import outbox as outbox_table
from service.db.check_cache import CheckRows
from service.db.invalidation import InvalidationListener
from service.db.migrate import migrate
from service.dev.pgcluster import LocalCluster
from service.security.tokens import generate_signing_key_pem
from service.settings import REPOSITORY_SCHEMAS_DIR, load_settings
from service.worker import BATCH_SIZE
from tests.bench_data import load_consents
from tests.support.credentials import OPERATOR_ENV
from tests.support.databases import with_database

SIZES = [int(size) for size in os.environ.get("BENCH_SCALE_ROWS", "10000,10000000").split(",")]
REPEAT = int(os.environ.get("BENCH_SCALE_REPEAT", "20"))
DUE = int(os.environ.get("BENCH_SCALE_DUE", "100"))
# The private server is sized as a server holding ten million consents would be (PostgreSQL's
# default of 128 MB of shared buffers is sized for a laptop): BENCH_SCALE_SHARED_BUFFERS
# (default 4GB), and memory and WAL room to rebuild the indexes after the bulk load.
SERVER_SETTINGS = {
    "shared_buffers": os.environ.get("BENCH_SCALE_SHARED_BUFFERS", "4GB"),
    "maintenance_work_mem": "1GB",
    "max_wal_size": "16GB",
}
PREFIX = "s"

# The rows each sweep must handle, the same number at every size. Triggers off, as the load.
LOAD_DUE = [
    # requests whose link expired an hour ago, unanswered
    """
    insert into consent_requests (
        id, subject_id, status, country, age_of_consent, basis, birth_date,
        consent_required_until, guardian_ref, purposes, locale, policy_version,
        link_token_hash, api_key_id, created_at, expires_at, updated_at)
    select gen_random_uuid(), 'overdue-' || i, 'pending', t.country, t.age_of_consent,
           t.basis, t.birth_date, t.consent_required_until, t.guardian_ref, t.purposes,
           t.locale, t.policy_version, sha256(convert_to('overdue' || i, 'UTF8')),
           t.api_key_id, $2::timestamptz - interval '8 days',
           $2::timestamptz - interval '1 hour', $2::timestamptz
    from generate_series(1, $3) as i, consent_requests as t where t.id = $1
    """,
    # denied five years ago, never purged
    """
    insert into consent_requests (
        id, subject_id, status, country, age_of_consent, basis, consent_required_until,
        guardian_email_hash, guardian_ref, purposes, locale, policy_version, api_key_id,
        created_at, expires_at, decided_at, updated_at)
    select gen_random_uuid(), 'denied-' || i, 'denied', t.country, t.age_of_consent, t.basis,
           t.consent_required_until, sha256(convert_to('denied' || i, 'UTF8')), t.guardian_ref,
           t.purposes, t.locale, t.policy_version, t.api_key_id,
           $2::timestamptz - interval '5 years', $2::timestamptz - interval '5 years',
           $2::timestamptz - interval '5 years', $2::timestamptz - interval '5 years'
    from generate_series(1, $3) as i, consent_requests as t where t.id = $1
    """,
    # granted consents: some lapsed an hour ago, some revoked five years ago and never purged
    """
    with requests as (
        insert into consent_requests (
            id, subject_id, status, country, age_of_consent, basis, consent_required_until,
            guardian_ref, purposes, locale, policy_version, api_key_id, created_at,
            expires_at, decided_at, updated_at)
        select gen_random_uuid(), kind || '-' || i, 'granted', t.country, t.age_of_consent,
               t.basis, t.consent_required_until, t.guardian_ref, t.purposes, t.locale,
               t.policy_version, t.api_key_id, $2::timestamptz - interval '6 years',
               $2::timestamptz - interval '6 years' + interval '7 days',
               $2::timestamptz - interval '6 years', $2::timestamptz
        from generate_series(1, $3) as i, (values ('lapsed'), ('revoked')) as k (kind),
             consent_requests as t
        where t.id = $1
        returning id, subject_id, purposes, country, policy_version, guardian_ref
    )
    insert into consents (
        id, request_id, subject_id, status, purposes, purpose_methods, jurisdiction, method,
        policy_version, guardian_ref, granted_at, expires_at, ended_at, end_reason, token,
        updated_at)
    select gen_random_uuid(), r.id, r.subject_id,
           case when r.subject_id like 'lapsed-%' then 'granted' else 'revoked' end,
           r.purposes, (select jsonb_object_agg(p, 'email_plus') from unnest(r.purposes) p),
           r.country, 'email_plus', r.policy_version, r.guardian_ref,
           $2::timestamptz - interval '6 years',
           case when r.subject_id like 'lapsed-%' then $2::timestamptz - interval '1 hour'
                else $2::timestamptz - interval '5 years' end,
           case when r.subject_id like 'lapsed-%' then null
                else $2::timestamptz - interval '5 years' end,
           case when r.subject_id like 'lapsed-%' then null else 'bench' end,
           'token', $2::timestamptz
    from requests as r
    """,
    # emails due now
    """
    insert into outbox (id, kind, topic, subject_id, related_id, payload_enc, next_attempt_at,
                        created_at)
    select gen_random_uuid(), 'email', 'guardian.request', 'overdue-' || i, $1,
           sha256(convert_to('mail' || i, 'UTF8')), $2::timestamptz, $2::timestamptz
    from generate_series(1, $3) as i
    """,
]

AUTO_EXPLAIN = [
    "load 'auto_explain'",
    "set auto_explain.log_min_duration = 0",
    "set auto_explain.log_analyze = on",
    "set auto_explain.log_buffers = on",
    "set auto_explain.log_level = notice",
]


class Rollback(Exception):
    """Leaves a transaction whose changes the measurement must not keep."""


def environment(database_url: str, workdir: Path) -> dict[str, str]:
    signing_key = workdir / "signing.pem"
    if not signing_key.exists():
        signing_key.write_bytes(generate_signing_key_pem())
    return {
        "CONSENT_DATABASE_URL": database_url,
        "CONSENT_SMTP_URL": "smtp://127.0.0.1:25",
        "CONSENT_MAIL_FROM": "consent@bench.example",
        "CONSENT_PUBLIC_URL": "http://127.0.0.1",
        "CONSENT_SIGNING_KEY_FILE": str(signing_key),
        "CONSENT_DATA_KEY": base64.b64encode(b"b" * 32).decode(),
        **OPERATOR_ENV,
    }


def new_request(subject: str) -> NewRequest:
    return NewRequest(
        subject_id=subject,
        birth_date="2016-05-05",
        country="SI",
        guardian_email=f"{subject}@example.com",
        purposes=["tutoring", "progress_reports"],
    )


async def median_ms(repeat: int, operation: Callable[[], Awaitable[object]]) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        await operation()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


async def rolled_back(
    connection: asyncpg.Connection, work: Callable[[], Awaitable[object]]
) -> None:
    try:
        async with connection.transaction():
            await work()
            raise Rollback
    except Rollback:
        pass


def scans(plan: str) -> str:
    """The plan's scan nodes in one line: what shows index use (or its absence)."""
    found = re.findall(
        r"((?:Parallel )?(?:Seq Scan|Index Only Scan|Index Scan|Bitmap Heap Scan|"
        r"Bitmap Index Scan)(?: Backward)?(?: using \S+)? on \S+)",
        plan,
    )
    return "; ".join(found) or "(no table scanned)"


def print_plans(plans: list[str]) -> None:
    """Each distinct plan once (a sweep runs the same statements per row), with how often it
    ran; the driver's own catalogue queries left out."""
    distinct: dict[str, list[str]] = {}
    for plan in plans:
        tables = re.findall(r" on (\w+)", scans(plan))
        if tables and all(table.startswith("pg_") for table in tables):
            continue
        shape = re.sub(r"[\d.]+", "#", plan)
        distinct.setdefault(shape, []).append(plan)
    for same in distinct.values():
        print(f"   {len(same)}x  scans: {scans(same[0])}")
        print("       " + same[0].replace("\n", "\n       "))


async def measure(database_url: str, rows: int, workdir: Path) -> dict[str, float]:
    settings = load_settings(environment(database_url, workdir))
    runtime = Runtime(settings)
    plain = await asyncpg.connect(database_url)
    explained = await asyncpg.connect(database_url)
    plans: list[str] = []
    explained.add_log_listener(lambda _connection, message: plans.append(message.message))
    try:
        now = runtime.clock.now()
        _, api_key = await api_keys.create_api_key(
            plain, name="bench", scopes=list(api_keys.SCOPES), now=now
        )
        key_id = api_key.id
        created = await create_request(
            plain,
            runtime,
            body=new_request("template"),
            api_key_id=key_id,
            api_key_name="bench",
            idempotency_key=None,
        )
        template = uuid.UUID(str(created.body["id"]))
        started = time.perf_counter()
        await load_consents(
            plain, template_request=template, prefix=PREFIX, rows=rows, now=now, report=print
        )
        async with plain.transaction():
            await plain.execute("set local session_replication_role = replica")
            for statement in LOAD_DUE:
                await plain.execute(statement, template, now, DUE)
        await plain.execute("analyze")
        print(f"loaded {rows} consents in {time.perf_counter() - started:.0f} s")
        sizes = await plain.fetch(
            "select relname, n_live_tup, pg_size_pretty(pg_total_relation_size(relid)) as size"
            " from pg_stat_user_tables where relname in"
            " ('consents', 'consent_requests', 'audit_events', 'outbox') order by relname"
        )
        print(", ".join(f"{r['relname']} {r['n_live_tup']} rows ({r['size']})" for r in sizes))

        granted = [f"{PREFIX}{n}" for n in range(1, rows + 1) if n % 20 not in (16, 17, 18)]
        ended = [f"{PREFIX}{n}" for n in range(16, rows + 1, 20)] or granted

        def picks(pool: list[str]) -> Callable[[], str]:
            return lambda: random.choice(pool)

        figures: dict[str, float] = {}
        cases: list[tuple[str, Callable[[asyncpg.Connection], Awaitable[object]]]] = []

        def read_check(
            pick: Callable[[], str],
        ) -> Callable[[asyncpg.Connection], Awaitable[object]]:
            return lambda connection: consents.check_row(connection, pick())

        cases.append(("check, database read (granted)", read_check(picks(granted))))
        cases.append(("check, database read (ended)", read_check(picks(ended))))
        cases.append(
            ("check, database read (unknown)", read_check(lambda: f"nobody-{uuid.uuid4()}"))
        )

        def creation(connection: asyncpg.Connection) -> Awaitable[object]:
            return rolled_back(
                connection,
                lambda: create_request(
                    connection,
                    runtime,
                    body=new_request(f"new-{uuid.uuid4().hex[:12]}"),
                    api_key_id=key_id,
                    api_key_name="bench",
                    idempotency_key=None,
                ),
            )

        cases.append(("request creation", creation))
        sweep_steps = [
            ("sweep: expire overdue requests", sweeps.expire_overdue_requests),
            ("sweep: expire lapsed consents", sweeps.expire_lapsed_consents),
            ("sweep: lapsing notices", sweeps.notify_lapsing_consents),
            ("sweep: purge requests (retention)", retention.purge_requests),
            ("sweep: purge consents (retention)", retention.purge_consents),
            ("sweep: purge outbox (retention)", retention.purge_outbox),
            ("sweep: purge rate-limit windows", retention.purge_rate_limit_windows),
            ("sweep: purge idempotency records", retention.purge_idempotency_records),
        ]
        for name, step in sweep_steps:

            def swept(
                connection: asyncpg.Connection, step: Callable[..., Awaitable[object]] = step
            ) -> Awaitable[object]:
                return rolled_back(connection, lambda: step(connection, runtime))

            cases.append((name, swept))

        def claim(connection: asyncpg.Connection) -> Awaitable[object]:
            return rolled_back(
                connection,
                lambda: outbox_table.claim_due(
                    connection,
                    now=runtime.clock.now(),
                    limit=BATCH_SIZE,
                    lease=timedelta(seconds=60),
                ),
            )

        cases.append(("outbox claim", claim))

        for statement in AUTO_EXPLAIN:
            await explained.execute(statement)
        for name, case in cases:
            await case(plain)  # warm the caches and the prepared statements
            figures[name] = await median_ms(REPEAT, lambda case=case: case(plain))
            plans.clear()
            await case(explained)
            print(f"\n## {name} at {rows} consents: median {figures[name]:.3f} ms")
            print_plans(plans)

        figures["check, cached (a hit)"] = await cached_check(database_url, runtime, granted[0])
        return figures
    finally:
        await plain.close()
        await explained.close()


async def cached_check(database_url: str, runtime: Runtime, subject: str) -> float:
    """The median of a check answered from the cache (a listening one, or it is not used)."""
    listener = InvalidationListener(database_url)
    listener.start()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        for _ in range(100):
            if listener.healthy:
                break
            await asyncio.sleep(0.05)
        checks = CheckRows(
            pool, listener, ttl=timedelta(seconds=60), clock=runtime.clock, size=1000
        )
        await checks.read(subject)
        return await median_ms(REPEAT * 50, lambda: checks.read(subject))
    finally:
        await listener.stop()
        await pool.close()


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="consent-bench-scale-", dir=os.environ.get("TMPDIR")))
    workdir.chmod(0o711)
    cluster = None
    try:
        admin_dsn = os.environ.get("CONSENT_DATABASE_URL")
        if not admin_dsn:
            cluster = LocalCluster(workdir / "pg", server_settings=SERVER_SETTINGS)
            cluster.start()
            admin_dsn = cluster.admin_dsn
        results: dict[int, dict[str, float]] = {}
        for rows in SIZES:
            database = f"consent_scale_{rows}_{uuid.uuid4().hex[:6]}"
            asyncio.run(create_database(admin_dsn, database))
            url = with_database(admin_dsn, database)
            try:
                asyncio.run(migrate(url, REPOSITORY_SCHEMAS_DIR))
                print(f"\n==== {rows} consents ====")
                results[rows] = asyncio.run(measure(url, rows, workdir))
            finally:
                asyncio.run(drop_database(admin_dsn, database))
        print(
            f"\n=== medians in ms over {REPEAT} repetitions (the cached check: {REPEAT * 50}) ==="
        )
        print(f"{'':<40}" + "".join(f"{rows:>14}" for rows in SIZES) + f"{'largest/smallest':>18}")
        for name in results[SIZES[0]]:
            values = [results[rows][name] for rows in SIZES]
            ratio = values[-1] / values[0] if values[0] else float("nan")
            print(f"{name:<40}" + "".join(f"{v:>14.3f}" for v in values) + f"{ratio:>17.2f}x")
    finally:
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


async def create_database(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await admin.close()


if __name__ == "__main__":
    main()
