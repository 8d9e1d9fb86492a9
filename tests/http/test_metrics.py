"""/metrics: Prometheus text with request counts and latencies by route, and pool usage."""

from __future__ import annotations

import re

import httpx


def sample(text: str, name: str, **labels: str) -> float:
    # prometheus_client writes labels in alphabetical order (`le` before `method`)
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = (
        rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$" if labels else rf"^{name} (\S+)$"
    )
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{name} {labels} not in metrics"
    return float(match.group(1))


async def test_requests_are_counted_by_route_template_not_by_raw_path(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for subject in ("child-a", "child-b", "child-c"):
        await client.get(
            "/v1/consents/check",
            params={"subject_id": subject, "purpose": "tutoring"},
            headers=auth,
        )
    secret_looking = "A" * 43
    await client.get(f"/guardian/{secret_looking}")

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text

    labels = {"method": "GET", "route": "/v1/consents/check"}
    assert sample(text, "consent_http_requests_total", **labels, status="200") == 3
    assert sample(text, "consent_http_request_duration_seconds_count", **labels) == 3
    assert sample(text, "consent_http_request_duration_seconds_bucket", **labels, le="+Inf") == 3
    assert (
        sample(
            text,
            "consent_http_requests_total",
            method="GET",
            route="/guardian/{token}",
            status="404",
        )
        == 1
    )
    # neither subject ids nor link tokens end up in label values
    assert "child-a" not in text
    assert secret_looking not in text
    assert sample(text, "consent_db_pool_max") >= 1
    assert sample(text, "consent_db_pool_in_use") >= 0


async def test_latency_buckets_are_cumulative(client: httpx.AsyncClient) -> None:
    for _ in range(5):
        await client.get("/healthz")
    text = (await client.get("/metrics")).text
    healthz_bucket = (
        r'^consent_http_request_duration_seconds_bucket\{le="[^"]+",method="GET",route="/healthz"\}'
    )
    buckets = [
        float(value) for value in re.findall(healthz_bucket + r" (\S+)$", text, re.MULTILINE)
    ]
    assert buckets == sorted(buckets)
    assert buckets[-1] == 5
