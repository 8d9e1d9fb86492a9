"""`make bench` and `make bench-scale` in their smallest form, so that their code cannot rot
unnoticed: each runs to the end and prints every figure. Nothing here asserts a timing: the
numbers of a run this small on a shared machine mean nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests import bench

TIMEOUT = 900


def run(module: str, env: dict[str, str]) -> str:
    finished = subprocess.run(
        [sys.executable, "-m", module],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return finished.stdout


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make bench does)")
def test_bench_prints_every_figure_beside_the_ceiling(database_url: str) -> None:
    output = run("tests.bench", {"BENCH_QUICK": "1", "CONSENT_DATABASE_URL": database_url})
    summary = output.split("=== summary")[1]
    for figure in bench.WRK_FIGURES:
        assert figure in summary, figure
    for figure in (
        "outbox emails/s",
        "raw aiosmtplib emails/s",
        "outbox / raw aiosmtplib",
        "revocation A to B, ms (10 revocations)",
        "resident memory, one worker",
    ):
        assert figure in summary, figure
    # B caches the 500 subjects checked for the memory figure (and those of the revocations)
    cached = re.search(r"with (\d+) cached subjects", summary)
    assert cached is not None
    assert int(cached.group(1)) >= 500


def test_bench_scale_prints_every_figure_and_the_plans(postgres_admin_dsn: str) -> None:
    output = run(
        "tests.bench_scale",
        {
            "CONSENT_DATABASE_URL": postgres_admin_dsn,
            "BENCH_SCALE_ROWS": "100,300",
            "BENCH_SCALE_REPEAT": "1",
            "BENCH_SCALE_DUE": "3",
        },
    )
    table = output.split("=== medians")[1]
    for figure in (
        "check, database read (granted)",
        "check, database read (unknown)",
        "check, cached (a hit)",
        "request creation",
        "sweep: expire overdue requests",
        "sweep: purge consents (retention)",
        "outbox claim",
    ):
        assert figure in table, figure
    assert "loaded 300 consents" in output
    # the plans are PostgreSQL's own, of the statements the service ran
    assert "Index Scan using consents_one_live_per_subject on consents" in output
    assert "scans:" in output
