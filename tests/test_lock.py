"""The lock files are made from today's pyproject.toml, pin every package with hashes, and are
what ``make run``/``make test`` and the container install."""

from __future__ import annotations

import re

import pytest
from packaging.requirements import Requirement

from tests.support.locks import (
    DEV_LOCK,
    LOCKS,
    ROOT,
    Lock,
    normalise,
    pins,
    read_pyproject,
    recorded_inputs,
)

STALE = "pyproject.toml's requirements changed since the locks were made: run `make lock`"


@pytest.mark.parametrize("lock", LOCKS, ids=lambda lock: lock.path.name)
def test_lock_is_made_from_the_requirements_of_pyproject(lock: Lock) -> None:
    text = lock.path.read_text(encoding="utf-8")
    wanted = lock.inputs(read_pyproject())
    assert recorded_inputs(text) == wanted, f"{lock.path.name}: {STALE}"
    assert text.startswith(lock.header(wanted)), f"{lock.path.name} was edited by hand"


@pytest.mark.parametrize("lock", LOCKS, ids=lambda lock: lock.path.name)
def test_lock_pins_each_requirement_within_its_range(lock: Lock) -> None:
    pinned = pins(lock.path.read_text(encoding="utf-8"))
    for text in lock.inputs(read_pyproject()):
        requirement = Requirement(text)
        version = pinned.get(normalise(requirement.name))
        assert version is not None, f"{lock.path.name} does not pin {requirement.name}: {STALE}"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock.path.name} pins {requirement.name}=={version}, outside {text}: {STALE}"
        )


@pytest.mark.parametrize("lock", LOCKS, ids=lambda lock: lock.path.name)
def test_every_pinned_package_carries_hashes(lock: Lock) -> None:
    text = lock.path.read_text(encoding="utf-8")
    # an entry is a package line with the indented lines under it
    entries = [entry for entry in re.split(r"\n(?=[A-Za-z0-9])", text) if "==" in entry]
    assert len(entries) == len(pins(text)) > 0
    unhashed = [entry.split()[0] for entry in entries if "--hash=sha256:" not in entry]
    assert unhashed == []


def test_the_container_ships_the_versions_the_tests_run() -> None:
    shipped = pins((ROOT / "requirements.lock").read_text(encoding="utf-8"))
    tested = pins(DEV_LOCK.read_text(encoding="utf-8"))
    differing = {name: (version, tested.get(name)) for name, version in shipped.items()}
    assert {name: pair for name, pair in differing.items() if pair[0] != pair[1]} == {}


def test_make_and_the_container_install_from_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "LOCK := requirements-dev.lock" in makefile
    assert "cat pyproject.toml $(LOCK) | cksum" in makefile, "a new lock must rebuild the venv"
    assert "pip install --quiet --require-hashes --only-binary :all: -r $(LOCK)" in makefile
    assert "pip install --quiet --no-deps --no-build-isolation -e ." in makefile
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install --require-hashes --only-binary :all: -r requirements.lock" in dockerfile
    assert "pip install --no-deps --no-build-isolation ." in dockerfile
    bases = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert bases == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"], "both stages share one base image"
