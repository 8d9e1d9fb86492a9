"""The development identity provider (``devidp/``, the npm package oidc-provider) as a child
process: `consent-service dev` signs the console in through it, and so do the tests.

Node.js is the only thing it needs; without it the console stays off and ``dev`` says so in
one line. ``npm ci`` installs the pinned packages (package-lock.json) when they are missing or
the lock changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx

DEVIDP_DIR = Path(__file__).resolve().parents[2] / "devidp"
CLIENT_ID = "consent-console"
STARTUP_SECONDS = 30.0
INSTALL_SECONDS = 600


class IdentityProviderUnavailable(Exception):
    """Why the development identity provider cannot run here (one line)."""


def _lock_digest() -> str:
    return hashlib.sha256((DEVIDP_DIR / "package-lock.json").read_bytes()).hexdigest()


def install() -> None:
    """``npm ci`` in ``devidp/`` unless what it installed matches the lock already."""
    if not (DEVIDP_DIR / "server.mjs").is_file():
        raise IdentityProviderUnavailable(f"{DEVIDP_DIR} is missing (not a source checkout)")
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise IdentityProviderUnavailable(
            "Node.js (node and npm) is not installed; install it (apt-get install nodejs npm) "
            "to sign in to the support console"
        )
    marker = DEVIDP_DIR / "node_modules" / ".installed-lock"
    digest = _lock_digest()
    if marker.is_file() and marker.read_text() == digest:
        return
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=DEVIDP_DIR,
        capture_output=True,
        text=True,
        timeout=INSTALL_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise IdentityProviderUnavailable(f"npm ci in {DEVIDP_DIR} failed: {last}")
    marker.write_text(digest)


class DevIdentityProvider:
    """``node server.mjs`` on 127.0.0.1:``port`` with a console client whose callback is
    ``redirect_uri`` (a loopback one is accepted on any port)."""

    def __init__(self, port: int, redirect_uri: str) -> None:
        self.port = port
        self.redirect_uri = redirect_uri
        self.issuer = f"http://127.0.0.1:{port}"
        self.client_id = CLIENT_ID
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        install()
        node = shutil.which("node")
        assert node is not None
        self._process = subprocess.Popen(
            [node, "server.mjs"],
            cwd=DEVIDP_DIR,
            env={
                **os.environ,
                "DEV_IDP_PORT": str(self.port),
                "DEV_IDP_CLIENT_ID": self.client_id,
                "DEV_IDP_REDIRECT_URI": self.redirect_uri,
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        discovery = f"{self.issuer}/.well-known/openid-configuration"
        while True:
            if self._process.poll() is not None:
                raise IdentityProviderUnavailable(
                    f"the development identity provider exited with {self._process.returncode}"
                )
            try:
                if httpx.get(discovery, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise IdentityProviderUnavailable(
                    f"the development identity provider did not answer within {STARTUP_SECONDS}s"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
