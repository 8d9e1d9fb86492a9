"""`make bench`: load-test the service on loopback and print each route beside the ceiling.

Starts a private PostgreSQL (unless CONSENT_DATABASE_URL is set), a mail catcher and
`consent-service serve --workers N`, seeds one granted subject through the real guardian
flow, then runs wrk against /healthz (the framework's ceiling) and the check endpoint, first
answered from the check cache, then (the server restarted with CONSENT_CHECK_CACHE_SIZE=0)
from the database on every request.
BENCH_DURATION (seconds, default 10), BENCH_CONNECTIONS (default 64), BENCH_WORKERS (2).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

from service.clock import SystemClock
from service.consent.runtime import Runtime
from service.db import api_keys
from service.db.migrate import migrate
from service.dev.mailcatcher import MailCatcher
from service.dev.pgcluster import LocalCluster, free_port
from service.security.tokens import generate_signing_key_pem
from service.settings import REPOSITORY_SCHEMAS_DIR, load_settings
from service.worker import Worker
from tests.support.credentials import OPERATOR_ENV
from tests.support.guardian_client import csrf_token

DURATION = int(os.environ.get("BENCH_DURATION", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
SUBJECT = "bench-child"


def run_wrk(url: str, headers: dict[str, str]) -> dict[str, str]:
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency", url]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = {"rps": re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)}  # type: ignore[union-attr]
    for percentile in ("50", "99"):
        match = re.search(rf"^\s+{percentile}%\s+(\S+)", output, re.MULTILINE)
        result[f"p{percentile}"] = match.group(1) if match else "?"
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["errors"] = errors.group(1) if errors else "0"
    return result


async def seed_granted_subject(base_url: str, env: dict[str, str], catcher: MailCatcher) -> str:
    settings = load_settings(env)
    connection = await asyncpg.connect(settings.database_url)
    key, _ = await api_keys.create_api_key(
        connection, name="bench", scopes=list(api_keys.SCOPES), now=SystemClock().now()
    )
    await connection.close()
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        created = await client.post(
            "/v1/consent-requests",
            headers=auth,
            json={
                "subject_id": SUBJECT,
                "birth_date": "2016-05-05",
                "country": "SI",
                "guardian_email": "bench@example.com",
                "purposes": ["tutoring", "progress_reports"],
            },
        )
        created.raise_for_status()
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
        worker = Worker(Runtime(settings), pool)
        await worker.deliver_due()
        await worker.close()
        await pool.close()
        link = next(
            link
            for message in catcher.mailbox.messages
            for link in message.links
            if "/guardian/" in link
        )
        path = "/" + link.split("/", 3)[3]
        page = await client.get(path)
        decided = await client.post(
            path,
            data={
                "decision": "grant",
                "purposes": ["tutoring", "progress_reports"],
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
    return key


def wait_healthy(base_url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not become healthy")


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS)]
    return subprocess.Popen([sys.executable, "-m", "service", *command], env=env)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=20)


def report(name: str, url: str, headers: dict[str, str], ceiling: float | None) -> float:
    """Run wrk on ``url``, print a row (beside ``ceiling``, the /healthz rate); its req/s."""
    result = run_wrk(url, headers)
    rps = float(result["rps"])
    share = f"{rps / ceiling:>11.0%}" if ceiling else f"{1:>11.0%}"
    print(
        f"{name:<44}{rps:>10.0f}{result['p50']:>10}{result['p99']:>10}{result['errors']:>9}{share}"
    )
    return rps


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk (make bench does this as root)")
    workdir = Path(tempfile.mkdtemp(prefix="consent-bench-"))
    workdir.chmod(0o711)  # the cluster below runs as the postgres user when we are root
    cluster = None
    catcher = MailCatcher()
    catcher.start()
    server = None
    try:
        database_url = os.environ.get("CONSENT_DATABASE_URL")
        if not database_url:
            cluster = LocalCluster(workdir / "pg")
            cluster.start()
            database_url = cluster.dsn("postgres")
        asyncio.run(migrate(database_url, REPOSITORY_SCHEMAS_DIR))
        signing_key = workdir / "signing.pem"
        signing_key.write_bytes(generate_signing_key_pem())
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "CONSENT_DATABASE_URL": database_url,
            "CONSENT_SMTP_URL": catcher.url,
            "CONSENT_MAIL_FROM": "consent@bench.example",
            "CONSENT_PUBLIC_URL": base_url,
            "CONSENT_SIGNING_KEY_FILE": str(signing_key),
            "CONSENT_DATA_KEY": base64.b64encode(os.urandom(32)).decode(),
            "CONSENT_CONFIRMATION_DELAY": "0",
            "CONSENT_LOG_LEVEL": "warning",
            **OPERATOR_ENV,
        }
        server = start_server(env, port)
        wait_healthy(base_url, server)
        key = asyncio.run(seed_granted_subject(base_url, env, catcher))
        auth = {"Authorization": f"Bearer {key}"}
        granted = f"{base_url}/v1/consents/check?subject_id={SUBJECT}&purpose=tutoring"
        unknown = f"{base_url}/v1/consents/check?subject_id=nobody&purpose=tutoring"
        print(f"\nwrk: {DURATION}s, {CONNECTIONS} connections, {WORKERS} server workers, loopback")
        print(f"{'route':<44}{'req/s':>10}{'p50':>10}{'p99':>10}{'non-2xx':>9}{'of ceiling':>12}")
        ceiling = report("GET /healthz (ceiling)", f"{base_url}/healthz", {}, None)
        report("GET /v1/consents/check (granted, cached)", granted, auth, ceiling)
        report("GET /v1/consents/check (unknown, cached)", unknown, auth, ceiling)
        # The same checks again with every answer read from the database.
        stop_server(server)
        server = start_server({**env, "CONSENT_CHECK_CACHE_SIZE": "0"}, port)
        wait_healthy(base_url, server)
        report("GET /v1/consents/check (granted, cache off)", granted, auth, ceiling)
        report("GET /v1/consents/check (unknown, cache off)", unknown, auth, ceiling)
    finally:
        if server is not None:
            stop_server(server)
        catcher.stop()
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
