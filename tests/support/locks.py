"""The lock files: which requirements of pyproject.toml each one pins, how ``make lock`` makes them
with uv, and how the tests read them back.

Each lock pins every package, with the hashes of its files, for Python 3.11 on any platform; its
header lists the requirements it was made from, so a test can tell when pyproject.toml changed
and the locks were not made again. ``make lock`` keeps the versions already pinned where they
still fit; ``make lock UPGRADE=1`` takes the newest that fit.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
PYTHON_VERSION = "3.11"  # the oldest pyproject.toml allows, and the container's
# pip installs the rest, so it is pinned and hashed too (the venv's own may be years old)
INSTALLER = "pip>=25.3"
INPUT = "# input: "
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


@dataclass(frozen=True)
class Lock:
    path: Path
    extras: tuple[str, ...]
    installed_by: str
    # a lock whose versions this one keeps, so the tests run what the container ships
    same_versions_as: Path | None = None

    def inputs(self, pyproject: dict[str, Any]) -> list[str]:
        """The requirements this lock is made from: the installer, the build backend, the
        dependencies and the extras' (normalised, sorted)."""
        project = pyproject["project"]
        found = [INSTALLER, *pyproject["build-system"]["requires"], *project["dependencies"]]
        for extra in self.extras:
            found += project["optional-dependencies"][extra]
        return sorted({str(Requirement(text)) for text in found}, key=str.lower)

    def header(self, inputs: list[str]) -> str:
        name = self.path.name
        lines = [
            f"# Made by `make lock` from pyproject.toml; installed by {self.installed_by}:",
            f"#   pip install --require-hashes --only-binary :all: -r {name}",
            "#   pip install --no-deps --no-build-isolation .",
            "# Do not edit: change pyproject.toml and run `make lock` (UPGRADE=1 for the newest).",
            *(INPUT + requirement for requirement in inputs),
        ]
        return "\n".join(lines) + "\n"


DEV_LOCK = ROOT / "requirements-dev.lock"
LOCKS = (  # in the order they are made
    Lock(DEV_LOCK, ("dev", "test"), "`make run` and `make test`"),
    Lock(ROOT / "requirements.lock", (), "the container image (Dockerfile)", DEV_LOCK),
)


def read_pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def recorded_inputs(text: str) -> list[str]:
    return [line.removeprefix(INPUT) for line in text.splitlines() if line.startswith(INPUT)]


def pins(text: str) -> dict[str, str]:
    """Package name (normalised) → pinned version."""
    found = {}
    for line in text.splitlines():
        if match := _PIN.match(line):
            found[normalise(match.group(1))] = match.group(2)
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def make(lock: Lock, uv: Path, *, upgrade: bool) -> None:
    inputs = lock.inputs(read_pyproject())
    command = [
        str(uv), "pip", "compile", "-",
        "--output-file", lock.path.name,
        "--generate-hashes",
        "--universal",
        "--python-version", PYTHON_VERSION,
        "--only-binary", ":all:",
        "--no-header",
        "--quiet",
    ]  # fmt: skip
    if lock.same_versions_as is not None:
        command += ["--constraint", lock.same_versions_as.name]
    if upgrade:
        command.append("--upgrade")
    subprocess.run(command, input="\n".join(inputs) + "\n", text=True, check=True, cwd=ROOT)
    body = lock.path.read_text(encoding="utf-8")
    lock.path.write_text(lock.header(inputs) + body, encoding="utf-8")


def main(argv: list[str]) -> None:
    uv = Path(sys.executable).with_name("uv")
    for lock in LOCKS:
        make(lock, uv, upgrade="--upgrade" in argv)
        print(f"{lock.path.name}: {len(pins(lock.path.read_text(encoding='utf-8')))} packages")


if __name__ == "__main__":
    main(sys.argv[1:])
