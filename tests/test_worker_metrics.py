"""`consent-service worker` with CONSENT_WORKER_METRICS_PORT serves its own outbox and sweep
counters; a bad port stops it at start with one line naming the variable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from service.dev.pgcluster import free_port
from tests.support.processes import console_script, fetch, names, output, poll, sample


async def test_the_worker_serves_the_counters_of_what_it_delivered(
    base_env: dict[str, str],
    client: httpx.AsyncClient,
    auth: dict[str, str],
    mailbox: Any,
    tmp_path: Path,
) -> None:
    created = await client.post(
        "/v1/consent-requests",
        headers=auth,
        json={
            "subject_id": "metrics-child",
            "birth_date": "2016-01-01",
            "country": "SI",
            "guardian_email": "parent@example.com",
            "purposes": ["tutoring"],
        },
    )
    assert created.status_code == 201, created.text
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    log = tmp_path / "worker.log"
    env = {
        **base_env,
        "CONSENT_WORKER_METRICS_PORT": str(port),
        "CONSENT_WORKER_METRICS_HOST": "127.0.0.1",
    }
    scraped = ""

    async with console_script("worker", env=env, log=log) as process:

        async def delivered() -> bool:
            nonlocal scraped
            response = await fetch(url)
            scraped = response.text if response is not None else ""
            return bool(scraped) and sample(scraped, "consent_outbox_email_delivered_total") > 0

        await poll(delivered, "the worker to deliver the email", process, log)

    assert process.returncode == 0, output(log)
    assert len(mailbox.to("parent@example.com")) == 1
    assert sample(scraped, "consent_outbox_email_delivered_total") == 1
    assert sample(scraped, "consent_outbox_email_failures_total") == 0
    assert sample(scraped, "consent_outbox_webhook_delivered_total") == 0
    assert sample(scraped, "consent_sweeps_total") >= 1, "a pass sweeps before it delivers"
    for sweep in ("expired_requests", "lapsed_consents", "purged_requests", "purged_consents"):
        assert sample(scraped, "consent_swept_records_total", sweep=sweep) == 0
    assert sample(scraped, "consent_db_pool_max") == 10
    assert "consent_http_requests_total" not in names(scraped), "the worker serves no API"
    assert "metrics-child" not in scraped
    assert "parent@example.com" not in scraped


async def test_a_bad_metrics_port_stops_the_worker_naming_the_variable(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    env = {**base_env, "CONSENT_WORKER_METRICS_PORT": "70000"}

    async with console_script("worker", env=env, log=log) as process:
        await process.wait()

    assert process.returncode == 2
    [line] = output(log).splitlines()
    assert line.startswith("consent-service: CONSENT_WORKER_METRICS_PORT:"), line
