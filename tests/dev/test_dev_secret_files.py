"""`consent-service dev` writes its secrets (the development API key and the generated keys)
as files only their owner can read, from the moment they exist: created with mode 0600, never
widened and narrowed after.

Python's audit hooks see every file operation of the process; at each one the hook looks at the
secret files in the data directory and records any that others could read. A file written first
and chmod-ed after is caught at the chmod."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import sys
from pathlib import Path

from service.dev.mailcatcher import MailCatcher
from service.dev.pgcluster import free_port
from tests.support.processes import output

SECRETS = ("dev-api-key", "signing-key.pem", "data-key", "dev-staff-key.pem")

WATCHED_DEV = r"""
import os, stat, sys

watched = os.environ.pop("WATCHED_DIR")
report = os.environ.pop("WATCHED_REPORT")
secrets = tuple(os.environ.pop("WATCHED_NAMES").split(","))
os.umask(0o022)
busy = False


def look(event, args):
    global busy
    if busy:
        return
    busy = True
    try:
        for name in os.listdir(watched):
            if any(secret in name for secret in secrets):
                mode = stat.S_IMODE(os.stat(os.path.join(watched, name)).st_mode)
                if mode & 0o077:
                    with open(report, "a") as out:
                        out.write(f"{name} {oct(mode)} at {event}\n")
    except OSError:
        pass
    finally:
        busy = False


sys.addaudithook(look)
from service.cli import main

main(sys.argv[1:])
"""


async def test_dev_creates_its_secret_files_private_from_the_start(
    tmp_path: Path, database_url: str, smtp_server: MailCatcher
) -> None:
    data_dir = tmp_path / "dev-data"
    report = tmp_path / "readable-secrets.txt"
    log = tmp_path / "dev.log"
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONSENT_")}
    env.update(
        CONSENT_DATABASE_URL=database_url,
        CONSENT_SMTP_URL=smtp_server.url,
        WATCHED_DIR=str(data_dir),
        WATCHED_REPORT=str(report),
        WATCHED_NAMES=",".join(SECRETS),
    )
    data_dir.mkdir()
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WATCHED_DEV,
            "dev",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            env=env,
            stdout=out,
            stderr=out,
        )
        try:
            for _ in range(600):
                if "API key:" in output(log) or process.returncode is not None:
                    break
                await asyncio.sleep(0.1)
            banner = re.search(r"API key:\s+(csk_\S+)", output(log))
            assert banner, output(log)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=60)  # a safety net, not a check

    assert not report.exists(), f"secrets readable by others:\n{report.read_text()}"
    key_file = data_dir / "dev-api-key"
    assert key_file.read_text().strip() == banner.group(1)
    for name in SECRETS:
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    assert sorted(p.name for p in data_dir.iterdir() if ".tmp" in p.name) == []
