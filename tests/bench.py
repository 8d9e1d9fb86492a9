"""`make bench`: load-test the service on loopback and print each figure beside the ceiling.

Starts a private PostgreSQL (unless CONSENT_DATABASE_URL is set), a mail catcher and three
`consent-service serve` processes on one database: replica A (`--workers N`, the check cache
on), the same with the cache off (every check read from the database), and replica B (one
worker) for the figures that need a second replica. It seeds one granted subject through the
real guardian flow, then per run:

- wrk against /healthz (the framework's ceiling, taken in the same run as every figure beside
  it), the check of a granted subject and of an unknown one (cached, then with the cache off)
  and consent-request creation (a new subject and guardian address per request);
- the outbox: the worker's delivery of queued emails against raw aiosmtplib sending the same
  message over one connection, both to one aiosmtpd sink in its own process;
- revocation propagation: revoke a consent on A through the staff API, poll its check on B
  (whose cache held the granted answer) until B answers revoked: the time from A's answer.

Once, at the end: the resident memory of B's worker with BENCH_MEMORY_SUBJECTS subjects in its
check cache. Then a summary over the runs (medians, ranges and ratios to /healthz).

BENCH_RUNS (default 3), BENCH_DURATION (seconds per wrk figure, 10), BENCH_CONNECTIONS (64),
BENCH_WORKERS (2), BENCH_REVOCATIONS (per run, 200), BENCH_EMAILS (per run, 1000),
BENCH_MEMORY_SUBJECTS (100000). BENCH_QUICK=1 shrinks all of them to a smoke run that only
shows every figure is produced (its numbers mean nothing).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiosmtplib
import asyncpg
import httpx

from service.clock import SystemClock
from service.consent.runtime import Runtime
from service.db import api_keys
from service.db.migrate import migrate
from service.delivery.emails import RenderedEmail
from service.delivery.outbox import enqueue_email
from service.delivery.smtp import build_message
from service.dev.mailcatcher import MailCatcher
from service.dev.pgcluster import LocalCluster, free_port
from service.security.personal_data import DataProtector
from service.security.tokens import generate_signing_key_pem
from service.settings import REPOSITORY_SCHEMAS_DIR, load_settings
from service.worker import Worker
from tests.bench_data import consent_id, encrypt_addresses, load_consents
from tests.support.credentials import OPERATOR_ENV, StaffKeys, sign_ed25519, staff_claims
from tests.support.guardian_client import csrf_token

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


def setting(name: str, default: int, quick: int) -> int:
    return int(os.environ.get(name, str(quick if QUICK else default)))


RUNS = setting("BENCH_RUNS", 3, 1)
DURATION = setting("BENCH_DURATION", 10, 1)
CONNECTIONS = setting("BENCH_CONNECTIONS", 64, 8)
WORKERS = setting("BENCH_WORKERS", 2, 1)
REVOCATIONS = setting("BENCH_REVOCATIONS", 200, 10)
EMAILS = setting("BENCH_EMAILS", 1000, 20)
MEMORY_SUBJECTS = setting("BENCH_MEMORY_SUBJECTS", 100_000, 500)
SUBJECT = "bench-child"
PURPOSES = ["tutoring", "progress_reports"]

HEALTHZ = "GET /healthz (ceiling)"
CHECK_GRANTED = "check, granted subject (cached)"
CHECK_UNKNOWN = "check, unknown subject (cached)"
CHECK_GRANTED_DB = "check, granted subject (cache off)"
CHECK_UNKNOWN_DB = "check, unknown subject (cache off)"
CREATE = "POST /v1/consent-requests (new subject)"
WRK_FIGURES = [HEALTHZ, CHECK_GRANTED, CHECK_UNKNOWN, CHECK_GRANTED_DB, CHECK_UNKNOWN_DB, CREATE]

# A new subject and guardian address per request: neither the one-pending-request rule nor
# the per-guardian limit comes into play, as for a real signup stream.
CREATE_SCRIPT = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  n = 0
  run = args[1]
  headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Content-Type"] = "application/json"
end
function request()
  n = n + 1
  local s = "new-" .. run .. "-" .. id .. "-" .. n
  local body = '{"subject_id":"' .. s .. '","birth_date":"2016-05-05","country":"SI",' ..
    '"guardian_email":"' .. s .. '@example.com","purposes":["tutoring"]}'
  return wrk.format("POST", "/v1/consent-requests", headers, body)
end
"""


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Run:
    wrk: dict[str, WrkResult] = field(default_factory=dict)
    outbox_rate: float = 0.0
    raw_rate: float = 0.0
    propagation_ms: list[float] = field(default_factory=list)


def milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[match.group(2)]
    return float(match.group(1)) * scale


def run_wrk(
    url: str,
    headers: dict[str, str],
    *,
    script: str | None = None,
    args: list[str] | None = None,
    duration: int = DURATION,
    threads: int = 2,
    connections: int = CONNECTIONS,
) -> WrkResult:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        if script is not None:
            lua.write(script)
            lua.flush()
            command += ["-s", lua.name]
        command.append(url)
        if args:
            command += ["--", *args]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    latency = {
        percentile: re.search(rf"^\s+{percentile}%\s+(\S+)", output, re.MULTILINE)
        for percentile in ("50", "99")
    }
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return WrkResult(
        rps=float(rps.group(1)) if rps else 0.0,
        p50_ms=milliseconds(latency["50"].group(1)) if latency["50"] else float("nan"),
        p99_ms=milliseconds(latency["99"].group(1)) if latency["99"] else float("nan"),
        errors=int(errors.group(1)) if errors else 0,
    )


# ---- servers ------------------------------------------------------------------------------


class Server:
    def __init__(self, env: dict[str, str], workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            *("serve", "--host", "127.0.0.1", "--port", str(self.port)),
            *("--workers", str(workers)),
        ]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", *command],
            env={**env, "CONSENT_PUBLIC_URL": self.url},
        )

    def wait_healthy(self) -> None:
        for _ in range(600):
            if self.process.poll() is not None:
                raise SystemExit("a server exited during start-up")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit("a server did not become healthy")

    def resident_kib(self) -> int:
        """VmRSS of the worker process answering requests (the server's only child when it
        runs one worker; the server itself if it answers in-process)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = children.read_text().split() or [str(self.process.pid)]
        return max(rss_kib(pid) for pid in pids)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def rss_kib(pid: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


@contextmanager
def smtp_sink() -> Iterator[tuple[str, int]]:
    """aiosmtpd's Sink (accepts and drops every message) in a process of its own, so that
    receiving costs neither sender under test any of its CPU."""
    port = free_port()
    command = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"]
    process = subprocess.Popen([*command, "-c", "aiosmtpd.handlers.Sink"])
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(timeout=10)


# ---- seeding ------------------------------------------------------------------------------


@dataclass
class Seeded:
    api_key: str
    request_id: uuid.UUID
    email: RenderedEmail


async def seed_granted_subject(base_url: str, env: dict[str, str], catcher: MailCatcher) -> Seeded:
    """One subject through the real flow: request, the guardian's email, the grant."""
    settings = load_settings(env)
    connection = await asyncpg.connect(settings.database_url)
    key, _ = await api_keys.create_api_key(
        connection, name="bench", scopes=list(api_keys.SCOPES), now=SystemClock().now()
    )
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        created = await client.post(
            "/v1/consent-requests",
            headers=auth,
            json={
                "subject_id": SUBJECT,
                "birth_date": "2016-05-05",
                "country": "SI",
                "guardian_email": "bench@example.com",
                "purposes": PURPOSES,
            },
        )
        created.raise_for_status()
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
        worker = Worker(Runtime(settings), pool)
        await worker.deliver_due()
        await worker.close()
        await pool.close()
        message = catcher.mailbox.messages[-1]
        link = next(link for link in message.links if "/guardian/" in link)
        path = "/" + link.split("/", 3)[3]
        page = await client.get(path)
        decided = await client.post(
            path,
            data={
                "decision": "grant",
                "purposes": PURPOSES,
                "attestation": "yes",
                "_csrf_token": csrf_token(page.text),
            },
        )
        decided.raise_for_status()
        check = await client.get(
            "/v1/consents/check",
            params={"subject_id": SUBJECT, "purpose": "tutoring"},
            headers=auth,
        )
        assert check.json()["allowed"] is True, check.text
    request_id = uuid.UUID(created.json()["id"])
    await connection.close()
    email = RenderedEmail(subject=message.subject, text=message.text, html=message.html)
    return Seeded(api_key=key, request_id=request_id, email=email)


# ---- figures ------------------------------------------------------------------------------


async def outbox_against_raw(
    env: dict[str, str], seeded: Seeded, host: str, port: int
) -> tuple[float, float]:
    """Emails per second: the worker draining EMAILS queued emails, and aiosmtplib alone
    sending as many copies of one built message over one connection."""
    settings = load_settings({**env, "CONSENT_SMTP_URL": f"smtp://{host}:{port}"})
    runtime = Runtime(settings)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    assert pool is not None
    try:
        async with pool.acquire() as connection:
            # What request creation queued is not this figure's: only the EMAILS below are due.
            await connection.execute(
                "update outbox set status = 'cancelled', payload = null, payload_enc = null"
                " where status = 'pending'"
            )
            now = runtime.clock.now()
            async with connection.transaction():
                for number in range(EMAILS):
                    await enqueue_email(
                        connection,
                        runtime.protector,
                        topic="guardian.request",
                        subject_id=f"mail-{number}",
                        related_id=seeded.request_id,
                        to=f"guardian-{number}@example.com",
                        locale="en",
                        email=seeded.email,
                        now=now,
                    )
        worker = Worker(runtime, pool)
        started = time.perf_counter()
        delivered = await worker.deliver_due()
        outbox_rate = delivered / (time.perf_counter() - started)
        await worker.close()
        # Requests the creation figure left in flight may queue a few more after the update
        # above; they are delivered and counted like the rest.
        if delivered < EMAILS:
            raise SystemExit(f"the worker delivered {delivered} of {EMAILS} emails")
    finally:
        await pool.close()
    message = build_message(
        item_id=uuid.uuid4(),
        mail_from=settings.mail_from,
        to="guardian@example.com",
        email=seeded.email,
        locale="en",
    )
    client = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False)
    await client.connect()
    started = time.perf_counter()
    for _ in range(EMAILS):
        await client.send_message(message)
    raw_rate = EMAILS / (time.perf_counter() - started)
    await client.quit()
    return outbox_rate, raw_rate


async def propagation(
    replica_a: Server, replica_b: Server, api_key: str, staff_token: str, numbers: list[int]
) -> list[float]:
    """Per consent: B's check is cached as granted; revoke on A; poll B until it says revoked.
    The milliseconds from A's answer to B's first revoked answer."""
    timings = []
    check_auth = {"Authorization": f"Bearer {api_key}"}
    staff_auth = {"Authorization": f"Bearer {staff_token}"}
    async with (
        httpx.AsyncClient(base_url=replica_a.url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=replica_b.url, timeout=30) as on_b,
    ):
        for number in numbers:
            params = {"subject_id": f"revoke-{number}", "purpose": "tutoring"}
            before = await on_b.get("/v1/consents/check", params=params, headers=check_auth)
            assert before.json()["allowed"] is True, before.text
            revoked = await on_a.post(
                f"/v1/consents/{consent_id('revoke-', number)}/revoke",
                json={"reason": "Benchmark: revoked by support."},
                headers=staff_auth,
            )
            revoked.raise_for_status()
            answered = time.perf_counter()
            while True:
                after = await on_b.get("/v1/consents/check", params=params, headers=check_auth)
                if after.json()["status"] == "revoked":
                    break
            timings.append((time.perf_counter() - answered) * 1000)
    return timings


def cache_entries(server: Server) -> int:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(
        r'^consent_cache_entries\{cache="consent_check"[^}]*\}\s+([\d.e+]+)', text, re.M
    )
    return int(float(match.group(1))) if match else -1


async def check_each(server: Server, api_key: str, subjects: int) -> None:
    """Check subjects mem-1..mem-``subjects`` once each, 16 at a time."""
    numbers = iter(range(1, subjects + 1))
    auth = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

        async def checker() -> None:
            for number in numbers:
                params = {"subject_id": f"mem-{number}", "purpose": "tutoring"}
                answer = await client.get("/v1/consents/check", params=params, headers=auth)
                answer.raise_for_status()

        await asyncio.gather(*(checker() for _ in range(16)))


def resident_memory(server: Server, api_key: str) -> tuple[int, int, int]:
    """B's RSS before and after checking MEMORY_SUBJECTS subjects once each; cache entries."""
    before = server.resident_kib()
    asyncio.run(check_each(server, api_key, MEMORY_SUBJECTS))
    return before, server.resident_kib(), cache_entries(server)


# ---- report -------------------------------------------------------------------------------


def row(name: str, result: WrkResult, ceiling: WrkResult) -> str:
    return (
        f"{name:<42}{result.rps:>9.0f}{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}"
        f"{result.errors:>9}{result.rps / ceiling.rps:>9.2f}x"
        f"{result.p99_ms / ceiling.p99_ms:>8.2f}x"
    )


HEADER = f"{'':<42}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'rps/hz':>10}{'p99/hz':>9}"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def summary(runs: list[Run], memory: tuple[int, int, int]) -> None:
    print(f"\n=== summary over {len(runs)} run(s): median [min-max] ===")
    print(f"{'':<42}{'req/s':>22}{'req/s / healthz':>24}{'p99 / healthz p99':>24}")

    def spread(values: list[float], digits: int, suffix: str = "") -> str:
        return (
            f"{statistics.median(values):.{digits}f}{suffix} "
            f"[{min(values):.{digits}f}-{max(values):.{digits}f}]"
        )

    for name in WRK_FIGURES:
        rps = [run.wrk[name].rps for run in runs]
        ratio = [run.wrk[name].rps / run.wrk[HEALTHZ].rps for run in runs]
        p99 = [run.wrk[name].p99_ms / run.wrk[HEALTHZ].p99_ms for run in runs]
        print(f"{name:<42}{spread(rps, 0):>22}{spread(ratio, 2, 'x'):>24}{spread(p99, 2, 'x'):>24}")
    outbox = [run.outbox_rate for run in runs]
    raw = [run.raw_rate for run in runs]
    ratio = [run.outbox_rate / run.raw_rate for run in runs]
    print(f"{'outbox emails/s':<42}{spread(outbox, 0):>22}")
    print(f"{'raw aiosmtplib emails/s':<42}{spread(raw, 0):>22}")
    print(f"{'outbox / raw aiosmtplib':<42}{spread(ratio, 2, 'x'):>22}")
    timings = [ms for run in runs for ms in run.propagation_ms]
    print(
        f"{'revocation A to B, ms (' + str(len(timings)) + ' revocations)':<42}"
        f"{'p50 ' + format(percentile(timings, 0.5), '.1f'):>22}"
        f"{'p99 ' + format(percentile(timings, 0.99), '.1f'):>24}"
        f"{'max ' + format(max(timings), '.1f'):>24}"
    )
    before, after, entries = memory
    per_entry = (after - before) * 1024 / max(entries, 1)
    print(
        f"{'resident memory, one worker':<42}{after / 1024:>18.0f} MiB"
        f"   with {entries} cached subjects ({before / 1024:.0f} MiB before, "
        f"about {per_entry:.0f} bytes per subject)"
    )


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk (make bench does this as root)")
    workdir = Path(tempfile.mkdtemp(prefix="consent-bench-"))
    workdir.chmod(0o711)  # the cluster below runs as the postgres user when we are root
    cluster = None
    catcher = MailCatcher()
    catcher.start()
    servers: list[Server] = []
    try:
        database_url = os.environ.get("CONSENT_DATABASE_URL")
        if not database_url:
            cluster = LocalCluster(workdir / "pg")
            cluster.start()
            database_url = cluster.dsn("postgres")
        asyncio.run(migrate(database_url, REPOSITORY_SCHEMAS_DIR))
        signing_key = workdir / "signing.pem"
        signing_key.write_bytes(generate_signing_key_pem())
        staff = StaffKeys(workdir)
        env = {
            **os.environ,
            "CONSENT_DATABASE_URL": database_url,
            "CONSENT_SMTP_URL": catcher.url,
            "CONSENT_MAIL_FROM": "consent@bench.example",
            "CONSENT_PUBLIC_URL": "http://127.0.0.1",
            "CONSENT_SIGNING_KEY_FILE": str(signing_key),
            "CONSENT_DATA_KEY": base64.b64encode(os.urandom(32)).decode(),
            "CONSENT_CONFIRMATION_DELAY": "0",
            "CONSENT_LOG_LEVEL": "warning",
            **staff.env(),
            **OPERATOR_ENV,
        }
        replica_a = Server(env, WORKERS)
        uncached = Server({**env, "CONSENT_CHECK_CACHE_SIZE": "0"}, WORKERS)
        replica_b = Server(env, 1)
        servers = [replica_a, uncached, replica_b]
        for server in servers:
            server.wait_healthy()
        seeded = asyncio.run(seed_granted_subject(replica_a.url, env, catcher))
        revocations = REVOCATIONS * RUNS
        protector = Runtime(load_settings(env)).protector
        asyncio.run(load_subjects(database_url, protector, seeded, revocations))
        granted_numbers = [n for n in range(1, revocations * 2) if n % 20 not in (16, 17, 18)]
        token = sign_ed25519(
            staff.private_key,
            staff.kid,
            staff_claims(roles=["support"], exp=int(time.time()) + 7200),
        )
        auth = {"Authorization": f"Bearer {seeded.api_key}"}
        check = "/v1/consents/check?purpose=tutoring&subject_id="
        print(
            f"\nwrk: {DURATION}s per figure, {CONNECTIONS} connections, 2 threads; server: "
            f"{WORKERS} worker(s); loopback; {RUNS} run(s)"
            + (" — QUICK smoke run, the numbers mean nothing" if QUICK else "")
        )
        runs = []
        for number in range(1, RUNS + 1):
            run = Run()
            print(f"\n--- run {number} of {RUNS} ---\n{HEADER}")
            ceiling = run.wrk[HEALTHZ] = run_wrk(f"{replica_a.url}/healthz", {})
            print(row(HEALTHZ, ceiling, ceiling))
            targets = [
                (CHECK_GRANTED, f"{replica_a.url}{check}{SUBJECT}", None),
                (CHECK_UNKNOWN, f"{replica_a.url}{check}nobody", None),
                (CHECK_GRANTED_DB, f"{uncached.url}{check}{SUBJECT}", None),
                (CHECK_UNKNOWN_DB, f"{uncached.url}{check}nobody", None),
                (CREATE, f"{replica_a.url}/", CREATE_SCRIPT),
            ]
            for name, url, script in targets:
                result = run_wrk(url, auth, script=script, args=[str(number)] if script else None)
                run.wrk[name] = result
                print(row(name, result, ceiling))
            with smtp_sink() as (host, port):
                run.outbox_rate, run.raw_rate = asyncio.run(
                    outbox_against_raw(env, seeded, host, port)
                )
            print(
                f"outbox {run.outbox_rate:.0f} emails/s, raw aiosmtplib {run.raw_rate:.0f} "
                f"emails/s ({EMAILS} emails each): {run.outbox_rate / run.raw_rate:.2f}x"
            )
            mine = granted_numbers[(number - 1) * REVOCATIONS : number * REVOCATIONS]
            run.propagation_ms = asyncio.run(
                propagation(replica_a, replica_b, seeded.api_key, token, mine)
            )
            timings = run.propagation_ms
            print(
                f"revocation on A seen by B ({len(timings)} revocations): "
                f"p50 {percentile(timings, 0.5):.1f} ms, p99 {percentile(timings, 0.99):.1f} ms, "
                f"max {max(timings):.1f} ms"
            )
            runs.append(run)
        memory = resident_memory(replica_b, seeded.api_key)
        summary(runs, memory)
    finally:
        for server in servers:
            server.stop()
        catcher.stop()
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


async def load_subjects(
    database_url: str, protector: DataProtector, seeded: Seeded, revocations: int
) -> None:
    """Consents to revoke and subjects to fill a cache with, copied from the seeded request."""
    connection = await asyncpg.connect(database_url)
    try:
        now = SystemClock().now()
        for prefix, rows in (("revoke-", revocations * 2), ("mem-", MEMORY_SUBJECTS)):
            await load_consents(
                connection, template_request=seeded.request_id, prefix=prefix, rows=rows, now=now
            )
        await encrypt_addresses(connection, protector, prefix="revoke-", rows=revocations * 2)
    finally:
        await connection.close()


if __name__ == "__main__":
    main()
