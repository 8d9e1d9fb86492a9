"""Run the installed ``consent-service`` script as a long-lived process, and poll it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

CONSENT_SERVICE = str(Path(sys.executable).with_name("consent-service"))


@asynccontextmanager
async def console_script(
    *args: str, env: dict[str, str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``consent-service ARGS`` with exactly ``env`` (plus PATH), its output in ``log``; stopped
    with SIGTERM at the end of the block (check ``returncode`` after it)."""
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            CONSENT_SERVICE, *args, env=environment, stdout=output, stderr=output
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=60)  # a safety net, not a check
            except TimeoutError:
                process.kill()
                await process.wait()
                raise


async def poll(
    check: Callable[[], Awaitable[bool]],
    what: str,
    process: asyncio.subprocess.Process,
    log: Path,
    attempts: int = 600,
) -> None:
    """Wait until ``check()`` holds, giving up after ``attempts`` tries or when the process
    has ended (the deadline is generous; nothing is asserted about how long it took)."""
    for _ in range(attempts):
        if await check():
            return
        if process.returncode is not None:
            pytest.fail(f"consent-service ended while waiting for {what}:\n{output(log)}")
        await asyncio.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}:\n{output(log)}")


def output(log: Path) -> str:
    return log.read_text(errors="replace")


async def fetch(url: str) -> httpx.Response | None:
    """GET ``url`` on a connection of its own; None while nothing answers."""
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.get(url)
    except httpx.TransportError:
        return None


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, read with prometheus_client's parser."""
    found = [
        value.value
        for family in text_string_to_metric_families(text)
        for value in family.samples
        if value.name == name and value.labels == labels
    ]
    assert len(found) == 1, f"{name} {labels}: {len(found)} samples in\n{text}"
    return found[0]


def names(text: str) -> Iterable[str]:
    return {
        value.name for family in text_string_to_metric_families(text) for value in family.samples
    }
