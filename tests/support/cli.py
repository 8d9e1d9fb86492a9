"""The installed ``consent-service`` console script, run in a child process."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

CONSENT_SERVICE = str(Path(sys.executable).with_name("consent-service"))


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


async def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    cwd: Path | None = None,
    limit_seconds: float = 60,
) -> CliResult:
    """Run the installed ``consent-service`` script with exactly ``env`` (plus PATH, and
    CONSENT_DATABASE_URL when ``database_url`` is given), in a child process without blocking
    the event loop; the limit is a safety net, not a check.

    Commands that need only the database get only ``database_url``: they must not require the
    rest of the configuration.
    """
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
    if database_url is not None:
        environment["CONSENT_DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        CONSENT_SERVICE,
        *args,
        env=environment,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=limit_seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"consent-service {' '.join(args)} did not finish")
    assert process.returncode is not None
    return CliResult(process.returncode, stdout.decode(), stderr.decode())
