"""`consent-service dev` (what `make run` starts): private database, mail catcher, API, worker."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from service.dev.pgcluster import free_port


@pytest.fixture
def data_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="consent-dev-test-"))
    directory.chmod(0o755)  # its private cluster runs as the postgres user when we are root
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def wait_until(predicate: Callable[[], bool], what: str, attempts: int = 600) -> None:
    for _ in range(attempts):
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_dev_serves_the_whole_guardian_flow_and_stops_cleanly(data_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONSENT_")}
    log = data_dir / "dev.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service",
                "dev",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: answers(f"{base}/healthz") or process.poll() is not None, "start")
            assert process.poll() is None, log.read_text()
            assert answers(f"{base}/readyz")
            assert answers(f"{base}/dev/mail")
            key = re.search(r"API key:\s+(csk_\S+)", log.read_text())
            assert key, log.read_text()
            assert "Staff JWT:" in log.read_text()

            created = httpx.post(
                f"{base}/v1/consent-requests",
                headers={"Authorization": f"Bearer {key.group(1)}"},
                json={
                    "subject_id": "dev-child",
                    "birth_date": "2016-01-01",
                    "country": "SI",
                    "guardian_email": "parent@example.com",
                    "purposes": ["tutoring"],
                },
                timeout=10,
            )
            assert created.status_code == 201, created.text

            def link_in_mailbox() -> bool:
                return f"{base}/guardian/" in httpx.get(f"{base}/dev/mail", timeout=5).text

            wait_until(link_in_mailbox, "the guardian email in /dev/mail")
            link = re.search(
                rf'href="({re.escape(base)}/guardian/[^"]+)"', httpx.get(f"{base}/dev/mail").text
            )
            assert link
            review = httpx.get(link.group(1), timeout=5)
            assert review.status_code == 200
            assert "Give consent" in review.text
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
    assert process.returncode == 0, log.read_text()
    # the private database was stopped with the process, and is kept for the next run
    assert (data_dir / "pg" / "data" / "PG_VERSION").exists()
    assert not (data_dir / "pg" / "data" / "postmaster.pid").exists()
