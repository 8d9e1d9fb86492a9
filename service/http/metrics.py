"""Request metrics: counts and latencies by method, route template and status.

The label is the route template (``/guardian/{token}``), never the requested path: paths carry
guardian link tokens and subject ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import HttpMetrics


def metrics_middleware_factory(metrics: HttpMetrics) -> Callable[[ASGIApp], ASGIApp]:
    def middleware(app: ASGIApp) -> ASGIApp:
        async def record(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":  # type: ignore[comparison-overlap]
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500
            recorded = False

            def observe() -> None:
                nonlocal recorded
                if recorded:
                    return
                recorded = True
                route = str(scope.get("path_template") or "unmatched")
                method = str(scope.get("method", "GET"))
                metrics.observe_request(method, route, status, time.perf_counter() - started)

            async def send_and_capture(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                elif message["type"] == "http.response.body" and not message.get("more_body"):
                    # Counted before the last part leaves: a response a client holds is counted.
                    observe()
                await send(message)

            try:
                await app(scope, receive, send_and_capture)
            finally:
                observe()

        return record

    return middleware
