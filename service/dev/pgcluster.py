"""A private PostgreSQL cluster started from the server binaries on this machine.

Used by ``dev`` and the test suite when no database URL is configured, so neither depends on
a server somebody else runs. PostgreSQL refuses to run as root, so as root the cluster is
owned by and run as the ``postgres`` OS user.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL "
    "(Debian/Ubuntu: apt-get install postgresql) or set CONSENT_DATABASE_URL"
)


class ClusterError(Exception):
    pass


def find_bindir() -> Path:
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    candidates += sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise ClusterError(INSTALL_HINT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as PostgreSQL binds: connections of its previous run may linger in TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _traversable_by_others(path: Path) -> bool:
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def usable_directory(preferred: Path) -> Path:
    """``preferred``, or a stable folder under the temp dir when ``postgres`` cannot reach it."""
    if os.geteuid() != 0 or _traversable_by_others(preferred.parent):
        return preferred
    digest = hashlib.sha256(str(preferred.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"consent-pg-{digest}"


class LocalCluster:
    def __init__(self, directory: Path, server_settings: Mapping[str, str] | None = None) -> None:
        self.directory = directory
        # extra ``-c name=value`` options of the server (a benchmark sizes its memory)
        self.server_settings = dict(server_settings or {})
        self.data = directory / "data"
        self.bindir = find_bindir()
        self._run_as_postgres = os.geteuid() == 0
        self.port = 0
        # stop() stops only a server this object started, never one another process runs
        self.started_here = False

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._run_as_postgres and not _traversable_by_others(self.directory.parent):
            raise ClusterError(
                f"{self.directory.parent} is not reachable by the postgres user; "
                "choose a cluster directory whose parents are world-executable"
            )
        if self._run_as_postgres:
            owner = pwd.getpwnam("postgres")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            self._pg(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            )
        running_port = self._running_port()
        if running_port is not None:
            self.port = running_port
            return
        self.port = self.port if self.port and _port_is_free(self.port) else free_port()
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        for name, value in self.server_settings.items():
            options += f" -c {name}={value}"
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.directory / "postgres.log"),
            "-w",
            "-t",
            "60",
            "start",
            "-o",
            options,
        )
        self.started_here = True

    def stop(self) -> None:
        if self.started_here and (self.data / "postmaster.pid").exists():
            self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _running_port(self) -> int | None:
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return None
        status = self._pg("pg_ctl", "-D", str(self.data), "status", check=False)
        if status.returncode != 0:
            return None
        lines = pid_file.read_text().splitlines()
        return int(lines[3]) if len(lines) > 3 and lines[3].isdigit() else None

    def _pg(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / program), *args]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            user="postgres" if self._run_as_postgres else None,
            cwd="/",
        )
        if check and result.returncode != 0:
            output = result.stderr.strip() or result.stdout.strip()
            raise ClusterError(f"{program} failed ({result.returncode}): {output}")
        return result
