"""`consent-service dev` starts the development identity provider, points the console at it
and prints the console's URL; without Node.js it says so in one line and runs without it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.dev import identity_provider
from service.dev.identity_provider import IdentityProviderUnavailable
from service.dev.pgcluster import free_port
from tests.support.console import identity_provider_unavailable, sign_in

NODE_MISSING = identity_provider_unavailable()


@pytest.fixture(scope="module")
def dev_console() -> Iterator[tuple[str, str]]:
    """A running `dev`: its base URL and its output so far."""
    directory = Path(tempfile.mkdtemp(prefix="consent-devconsole-test-"))
    directory.chmod(0o755)  # its private cluster runs as the postgres user when we are root
    port = free_port()
    log = directory / "dev.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONSENT_")}
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
                str(directory / "data"),
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(900):
            if "Console:" in log.read_text() or process.poll() is not None:
                break
            time.sleep(0.1)
        assert process.poll() is None, log.read_text()
        assert "Console:" in log.read_text(), log.read_text()
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", log.read_text()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.skipif(NODE_MISSING is not None, reason=NODE_MISSING or "")
def test_dev_signs_the_console_in_through_its_identity_provider(
    dev_console: tuple[str, str],
) -> None:
    base, output = dev_console
    assert f"Console:   {base}/console" in output

    async def signed_in_page() -> httpx.Response:
        async with httpx.AsyncClient(timeout=10.0) as client:
            return await sign_in(client, base, "admin")

    page = asyncio.run(signed_in_page())
    assert page.status_code == 200
    assert "Signed in as Ada Admin" in page.text


def test_without_node_the_reason_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity_provider.shutil, "which", lambda _name: None)
    with pytest.raises(IdentityProviderUnavailable) as refused:
        identity_provider.install()
    assert "Node.js" in str(refused.value)
    assert "\n" not in str(refused.value)
