"""Real-browser test support: the app on a real loopback socket, and where Chromium is.

The server runs under uvicorn in a thread with an event loop of its own; the app creates its
asyncpg pool in its lifespan, on that loop, so nothing is shared with the test's loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn
from litestar import Litestar

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
HOW_TO_ENABLE = (
    "install Debian's chromium package: apt-get install chromium "
    "(make test does this when run as root)"
)
STARTUP_SECONDS = 20.0
SHUTDOWN_SECONDS = 20.0


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return (
            "the playwright Python package is missing (pip install -e '.[test]'); "
            f"and {HOW_TO_ENABLE}"
        )
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} is missing; {HOW_TO_ENABLE}"
    return None


async def _wait_for(condition: threading.Thread, seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while condition.is_alive():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@asynccontextmanager
async def live_server(app: Litestar, port: int, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` until the block ends; yields the base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            # Leave global logging alone: uvicorn's default dictConfig would bind handlers to
            # whatever sys.stderr pytest has installed at that moment.
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    base_url = f"http://{host}:{port}"
    thread.start()
    try:
        await _wait_until_healthy(base_url, thread)
        yield base_url
    finally:
        server.should_exit = True
        stopped = await _wait_for(thread, SHUTDOWN_SECONDS)
        assert stopped, f"the server on {base_url} did not stop within {SHUTDOWN_SECONDS}s"


async def _wait_until_healthy(base_url: str, thread: threading.Thread) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_SECONDS
    last_problem = "no answer yet"
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as probe:
        while True:
            if not thread.is_alive():
                raise RuntimeError(f"the server on {base_url} exited during startup")
            try:
                response = await probe.get("/healthz")
            except httpx.TransportError as exc:
                last_problem = repr(exc)
            else:
                if response.status_code == 200:
                    return
                last_problem = f"/healthz answered {response.status_code}"
            if loop.time() > deadline:
                raise TimeoutError(
                    f"the server on {base_url} was not healthy within {STARTUP_SECONDS}s: "
                    f"{last_problem}"
                )
            await asyncio.sleep(0.05)
