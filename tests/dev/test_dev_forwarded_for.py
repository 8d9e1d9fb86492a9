"""`consent-service dev` does not take the client address from X-Forwarded-For sent from
loopback (uvicorn would by default); the app believes only CONSENT_TRUSTED_PROXIES, unset here.

A real `dev` process with its private database and mail catcher, over real HTTP.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.dev.pgcluster import free_port
from service.http.guardian import SUBMISSIONS_PER_MINUTE
from service.security.tokens import new_link_token
from tests.support.guardian_client import csrf_token
from tests.support.processes import console_script, poll


@pytest.fixture
def data_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="consent-dev-xff-"))
    directory.chmod(0o755)  # its private cluster runs as the postgres user when we are root
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def test_dev_ignores_forwarded_for_from_loopback(data_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = data_dir / "dev.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_")}
    async with (
        console_script(
            "dev", "--port", str(port), "--data-dir", str(data_dir), env=env, log=log
        ) as process,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
    ):

        async def answers(path: str) -> bool:
            try:
                return (await http.get(path)).status_code == 200
            except httpx.HTTPError:
                return False

        await poll(lambda: answers("/healthz"), "start", process, log)
        key = re.search(r"API key:\s+(csk_\S+)", log.read_text())
        assert key, log.read_text()
        created = await http.post(
            "/v1/consent-requests",
            headers={"Authorization": f"Bearer {key.group(1)}"},
            json={
                "subject_id": "dev-xff-child",
                "birth_date": "2016-01-01",
                "country": "SI",
                "guardian_email": "xff.parent@example.com",
                "purposes": ["tutoring"],
            },
        )
        assert created.status_code == 201, created.text

        async def mailed() -> bool:
            return f"{base}/guardian/" in (await http.get("/dev/mail")).text

        await poll(mailed, "the guardian email in /dev/mail", process, log)
        link = re.search(
            rf'href="{re.escape(base)}(/guardian/[^"]+)"', (await http.get("/dev/mail")).text
        )
        assert link
        review = await http.get(link.group(1))
        assert review.status_code == 200, review.text
        csrf = csrf_token(review.text)

        # Every probe claims another client. Twice the limit: whichever way the probes fall
        # into one-minute windows, one window holds more than the limit.
        statuses = [
            (
                await http.post(
                    f"/guardian/{new_link_token()}",
                    data={"decision": "deny", "_csrf_token": csrf},
                    headers={"X-Forwarded-For": f"198.18.{i // 250}.{i % 250 + 1}"},
                )
            ).status_code
            for i in range(2 * SUBMISSIONS_PER_MINUTE + 1)
        ]
        assert set(statuses) <= {404, 429}, statuses
        assert 429 in statuses, "X-Forwarded-For from loopback was believed"
    assert process.returncode == 0, log.read_text()
