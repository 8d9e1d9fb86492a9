"""Prometheus text metrics: request counts and latencies by route, plus gauges read on scrape."""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Callable

from litestar.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _Histogram:
    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], _Histogram] = defaultdict(_Histogram)
        self.counters: dict[str, int] = defaultdict(int)
        self.gauges: dict[str, Callable[[], dict[str, float]]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        self.latency[(method, route)].observe(seconds)

    def increment(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def render(self) -> str:
        lines = [
            "# HELP consent_http_requests_total HTTP requests by method, route and status.",
            "# TYPE consent_http_requests_total counter",
        ]
        for (method, route, status), count in sorted(self.requests.items()):
            lines.append(
                f'consent_http_requests_total{{method="{method}",route="{_escape(route)}",'
                f'status="{status}"}} {count}'
            )
        lines += [
            "# HELP consent_http_request_duration_seconds HTTP request latency by route.",
            "# TYPE consent_http_request_duration_seconds histogram",
        ]
        for (method, route), histogram in sorted(self.latency.items()):
            labels = f'method="{method}",route="{_escape(route)}"'
            cumulative = 0
            for bound, count in zip(
                (*LATENCY_BUCKETS, float("inf")), histogram.counts, strict=True
            ):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                bucket = f'{labels},le="{le}"'
                lines.append(
                    f"consent_http_request_duration_seconds_bucket{{{bucket}}} {cumulative}"
                )
            lines.append(f"consent_http_request_duration_seconds_sum{{{labels}}} {histogram.total}")
            lines.append(
                f"consent_http_request_duration_seconds_count{{{labels}}} {histogram.count}"
            )
        for name, value in sorted(self.counters.items()):
            lines += [f"# TYPE consent_{name}_total counter", f"consent_{name}_total {value}"]
        for prefix, read in sorted(self.gauges.items()):
            for gauge, reading in sorted(read().items()):
                lines += [
                    f"# TYPE consent_{prefix}_{gauge} gauge",
                    f"consent_{prefix}_{gauge} {reading}",
                ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def metrics_middleware_factory(metrics: Metrics) -> Callable[[ASGIApp], ASGIApp]:
    def middleware(app: ASGIApp) -> ASGIApp:
        async def record(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":  # type: ignore[comparison-overlap]
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500

            async def send_and_capture(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_and_capture)
            finally:
                route = str(scope.get("path_template") or "unmatched")
                method = str(scope.get("method", "GET"))
                metrics.observe_request(method, route, status, time.perf_counter() - started)

        return record

    return middleware
