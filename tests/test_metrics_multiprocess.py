"""`consent-service serve --workers 2`: whichever worker process answers /metrics reports the
requests that both served, and the shared metrics directory is gone after the server stops."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from prometheus_client.multiprocess import MultiProcessCollector

from service.dev.pgcluster import free_port
from tests.support.processes import console_script, fetch, names, output, poll, sample

BATCH = 20  # requests sent at once, each on a connection of its own
MAX_BATCHES = 50
HEALTHZ = {"method": "GET", "route": "/healthz", "status": "200"}


def metrics_directories(parent: Path) -> list[Path]:
    return list(parent.glob("consent-metrics-*"))


def healthz_counts_by_process(metrics_dir: Path) -> Counter[str]:
    """What each worker process has counted for /healthz, read from its own counter file."""
    counts: Counter[str] = Counter()
    for path in metrics_dir.glob("counter_*.db"):
        pid = path.stem.removeprefix("counter_")
        for family in MultiProcessCollector.merge([str(path)]):
            for value in family.samples:
                if value.name == "consent_http_requests_total" and value.labels == HEALTHZ:
                    counts[pid] += int(value.value)
    return counts


async def test_metrics_count_the_requests_of_every_worker_process(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {**base_env, "TMPDIR": str(tmp_path)}  # where `serve` makes its metrics directory
    serve = ("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2")

    async with console_script(*serve, env=env, log=log) as process:

        async def answers() -> bool:
            response = await fetch(f"{base}/healthz")
            return response is not None and response.status_code == 200

        await poll(answers, "the server to answer", process, log)
        [metrics_dir] = metrics_directories(tmp_path)
        sent = 1  # the request that found the server up

        # Until both worker processes have served some: the kernel hands each new connection
        # to whichever worker accepts it first.
        for _ in range(MAX_BATCHES):
            responses = await asyncio.gather(*(fetch(f"{base}/healthz") for _ in range(BATCH)))
            assert all(r is not None and r.status_code == 200 for r in responses)
            sent += BATCH
            served = healthz_counts_by_process(metrics_dir)
            if len(served) >= 2:
                break
        assert len(served) == 2, f"one worker process served all {sent} requests: {served}"
        assert sum(served.values()) == sent

        for _ in range(6):  # scrapes on new connections, answered by either worker
            scrape = await fetch(f"{base}/metrics")
            assert scrape is not None
            assert scrape.status_code == 200
            assert sample(scrape.text, "consent_http_requests_total", **HEALTHZ) == sent
            assert sample(scrape.text, "consent_db_pool_max") == 2 * 10, "both pools, summed"
            assert "consent_outbox_email_delivered_total" not in names(scrape.text)

    assert process.returncode == 0, output(log)
    assert metrics_directories(tmp_path) == [], "serve removes its metrics directory"
