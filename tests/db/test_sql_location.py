"""Every SQL string of the service lives in ``service/db/``: the sources are scanned for it.

Only string literals count (found with ``ast``), so comments, docstrings and prose that mention
SQL words are not mistaken for statements.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "service"
REPOSITORIES = SERVICE / "db"

# How an SQL statement starts (case-insensitive), written so that English such as
# "create an API key" or "with that hash" does not match.
_STATEMENT = re.compile(
    r"""
    \A\s*\(?\s*(?:
        select\s.*?\bfrom\b
      | select\s+[\w.]+\s*\(
      | select\s+(?:\d+|true|false|null|\$\d+|'[^']*')\s*(?:::\s*\w+\s*)?(?:,.*)?;?\s*\Z
      | set\s+(?:local\s+|session\s+)?[a-z_]+(?:\.[a-z_]+)?\s*(?:=|to)\s
      | lock\s+table\s
      | show\s+[a-z_]+\s*;?\s*\Z
      | values\s*\((?:\s*(?:\$\d+|\d+|'[^']*'|null|default)\s*,?)+\)
      | (?:begin|commit|rollback)\s*;?\s*\Z
      | insert\s+into\s
      | update\s+\w+(?:\s+(?:as\s+)?\w+)?\s+set\s
      | delete\s+from\s
      | with\s+(?:recursive\s+)?\w+(?:\s*\([^)]*\))?\s+as\s+(?:not\s+)?(?:materialized\s+)?\(
      | (?:create|alter|drop)\s+(?:or\s+replace\s+)?(?:unique\s+)?(?:temp(?:orary)?\s+)?
        (?:table|index|database|extension|schema|type|function|trigger|view|sequence|role)\b
      | truncate\s+(?:table\s+)?\w+
      | (?:listen|unlisten)\s+"?\w+"?\s*;?\s*\Z
      | notify\s+"?\w+"?\s*(?:,.*)?;?\s*\Z
    )
    | \bpg_(?:advisory_\w+|try_advisory_\w+|notify)\s*\(
    """,
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)


def looks_like_sql(text: str) -> bool:
    return _STATEMENT.search(text) is not None


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are docstrings (module, class, function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                found.add(id(body[0].value))
    return found


def sql_strings(source: str) -> list[tuple[int, str]]:
    """(line, text) of each string literal in ``source`` that looks like an SQL statement.

    An f-string counts with its placeholders standing in for the interpolated values.
    """
    tree = ast.parse(source)
    skipped = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            for part in node.values:
                skipped.add(id(part))
            text = "".join(
                part.value if isinstance(part, ast.Constant) else "x" for part in node.values
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in skipped:
                continue
            text = node.value
        else:
            continue
        if looks_like_sql(text):
            found.append((node.lineno, " ".join(text.split())[:60].rstrip()))
    return sorted(found)


def sql_outside_repositories(root: Path) -> list[str]:
    """``path:line: statement`` for each SQL string under ``root`` outside ``root/db``."""
    offenders = []
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name.startswith("db/"):
            continue
        offenders += [f"{name}:{line}: {text}" for line, text in sql_strings(path.read_text())]
    return offenders


QUERY_METHODS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "copy_records_to_table"}


def query_calls(source: str) -> list[int]:
    """Lines that call a connection's query methods (``x.execute(...)``, ``x.fetchrow(...)``)."""
    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in QUERY_METHODS
    )


def test_only_the_repositories_run_queries() -> None:
    offenders = [
        f"{path.relative_to(SERVICE).as_posix()}:{line}"
        for path in sorted(SERVICE.rglob("*.py"))
        if not path.relative_to(SERVICE).as_posix().startswith("db/")
        for line in query_calls(path.read_text())
    ]
    assert not offenders, "queries run outside service/db/:\n" + "\n".join(offenders)


def test_a_query_call_is_seen() -> None:
    assert query_calls("async def f(c):\n    await c.fetchval(QUERY, 1)\n") == [2]
    assert query_calls("def f(d):\n    d.fetch_all()\n") == []


def test_no_sql_outside_the_repositories() -> None:
    offenders = sql_outside_repositories(SERVICE)
    assert not offenders, "SQL outside service/db/:\n" + "\n".join(offenders)


def test_the_repositories_are_scanned_as_sql() -> None:
    """The detector recognises the repositories' own statements, so it can see a stray one."""
    outbox_sql = sql_strings((REPOSITORIES / "outbox.py").read_text())
    assert len(outbox_sql) >= 8, outbox_sql


PLANTED = '''
"""select id from outbox (a docstring mentioning SQL is not SQL)"""
import asyncpg

HELP = "create an API key and print it (once)"
NOTE = "update the README; delete nothing"  # select * from comments is ignored too
WHY = " with that hash: events were removed"


async def purge(connection, name):
    """Delete from the table: prose, not a statement."""
    await connection.execute("DELETE FROM outbox WHERE created_at < $1", name)
    await connection.execute(f'create database "{name}"')
    await connection.fetchval(
        "select id "
        "from consents where subject_id = $1"
    )
    await connection.execute("select pg_advisory_xact_lock($1)", 1)
    await connection.execute("NOTIFY api_keys")
    await connection.execute("listen api_keys")
    await connection.execute(
        """
        with due as (select id from outbox limit 1)
        update outbox o set attempts = 1 from due where o.id = due.id
        """
    )
    await connection.execute("insert into api_keys (id) values ($1)", 1)
    await connection.execute("update outbox set status = 'sent'")
    await connection.execute("alter table audit_events disable trigger x")
'''


def test_the_detector_finds_planted_sql_and_ignores_prose() -> None:
    found = [text for _, text in sql_strings(PLANTED)]

    assert found == [
        "DELETE FROM outbox WHERE created_at < $1",
        'create database "x"',
        "select id from consents where subject_id = $1",
        "select pg_advisory_xact_lock($1)",
        "NOTIFY api_keys",
        "listen api_keys",
        "with due as (select id from outbox limit 1) update outbox o",
        "insert into api_keys (id) values ($1)",
        "update outbox set status = 'sent'",
        "alter table audit_events disable trigger x",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "select 1",
        "SELECT $1::int",
        "set local lock_timeout = '2s'",
        "SET statement_timeout TO 5000",
        "lock table outbox in exclusive mode",
        "show server_version",
        "values (1, 2)",
        "begin",
        "commit;",
    ],
)
def test_short_statements_are_sql(text: str) -> None:
    assert looks_like_sql(text)


@pytest.mark.parametrize(
    "text",
    [
        "create an API key and print it (once)",
        "notify the guardian",
        "select a purpose",
        "update your details",
        "with that hash",
        "listen carefully to this",
        "delete the consent",
        "set the clock to noon",
        "show the page",
        "begin with the review",
        "select 15 or older",
        "lock the table by hand",
        "values (one per line)",
    ],
)
def test_prose_is_not_sql(text: str) -> None:
    assert not looks_like_sql(text)


def test_a_planted_sql_string_fails_the_scan(tmp_path: Path) -> None:
    for folder in ("db", "consent", "http"):
        (tmp_path / folder).mkdir()
    (tmp_path / "db" / "consents.py").write_text('Q = "select id from consents"\n')
    (tmp_path / "http" / "pages.py").write_text('HELP = "select a purpose, then update it"\n')
    (tmp_path / "consent" / "check.py").write_text(
        'import x\n\nQUERY = "Select locale From consent_requests Where id = $1"\n'
    )

    assert sql_outside_repositories(tmp_path) == [
        "consent/check.py:3: Select locale From consent_requests Where id = $1"
    ]
