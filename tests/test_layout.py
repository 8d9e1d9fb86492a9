"""The tests' own layout: fixtures live in conftest.py files, shared helpers in tests/support/,
and imports between them run one way only.

- A test module imports neither another test module nor a conftest (pytest loads those).
- A helper module in tests/support/ imports neither a conftest nor a test module, so conftest
  can import the helpers without a cycle; a conftest imports no test module either.
- Every directory of tests is a package, so two test files may share a basename.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SUPPORT = TESTS / "support"
SOURCES = sorted(TESTS.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or a package of this tree."""
    location = ROOT.joinpath(*name.split("."))
    return location.with_suffix(".py").is_file() or location.is_dir()


def imported_modules(source: str, importer: str, *, is_package: bool = False) -> list[str]:
    """Every module of the ``tests`` tree that module ``importer`` imports, relative imports
    resolved, ``from package import module`` counted as importing that module."""
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append(module)
            found += [
                f"{module}.{alias.name}"
                for alias in node.names
                if is_module(f"{module}.{alias.name}")
                or alias.name.startswith("test_")
                or alias.name == "conftest"
            ]
    return [name for name in found if name == "tests" or name.startswith("tests.")]


def imports_of(path: Path) -> list[str]:
    return imported_modules(
        path.read_text(encoding="utf-8"), module_name(path), is_package=path.name == "__init__.py"
    )


def is_test_module(name: str) -> bool:
    return name.rsplit(".", 1)[-1].startswith("test_")


def is_conftest(name: str) -> bool:
    return name.rsplit(".", 1)[-1] == "conftest"


def violations(paths: list[Path], *, forbidden: tuple[str, ...]) -> list[str]:
    checks = {"test modules": is_test_module, "conftest": is_conftest}
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in paths
        for name in imports_of(path)
        if any(checks[what](name) for what in forbidden)
    ]


def test_the_scan_finds_every_spelling_of_a_forbidden_import() -> None:
    source = "\n".join(
        [
            "import tests.conftest",
            "from tests.test_cli import run_cli",
            "from tests import test_settings",
            "from . import conftest",
            "from .test_problems import assert_problem",
            "from ..db.test_migrations import fetch",
            "from tests.support.service import serving",
        ]
    )
    found = imported_modules(source, "tests.http.test_example")
    assert [name for name in found if is_test_module(name) or is_conftest(name)] == [
        "tests.conftest",
        "tests.test_cli",
        "tests.test_settings",
        "tests.http.conftest",
        "tests.http.test_problems",
        "tests.db.test_migrations",
    ]
    assert "tests.support.service" in found


def test_test_modules_import_no_test_module_and_no_conftest() -> None:
    test_modules = [path for path in SOURCES if path.name.startswith("test_")]
    assert Path(__file__).resolve() in test_modules
    assert violations(test_modules, forbidden=("test modules", "conftest")) == [], (
        "move what they share to tests/support"
    )


def test_helpers_import_no_conftest_and_no_test_module() -> None:
    helpers = [path for path in SOURCES if path.is_relative_to(SUPPORT)]
    assert SUPPORT / "__init__.py" in helpers
    assert violations(helpers, forbidden=("test modules", "conftest")) == []


def test_conftest_files_import_no_test_module() -> None:
    conftests = [path for path in SOURCES if path.name == "conftest.py"]
    assert TESTS / "conftest.py" in conftests
    assert violations(conftests, forbidden=("test modules",)) == []


def test_every_test_directory_is_a_package() -> None:
    directories = {path.parent for path in SOURCES}
    missing = [d for d in sorted(directories) if not (d / "__init__.py").is_file()]
    assert missing == []
