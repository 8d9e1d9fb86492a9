"""The service's Prometheus metrics, shared by the HTTP app and the worker.

Labels hold route templates, methods, statuses and fixed names, never an id or a token.

One :class:`Metrics` per process. In multiprocess mode (``serve --workers N`` sets
``PROMETHEUS_MULTIPROC_DIR`` for its worker processes) every process writes its values to files
in that directory and a scrape, answered by any worker, adds up the files of all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import glob
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from service.states import OutboxKind

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
POOL_STATS = ("size", "idle", "in_use", "max")
SWEEPS = (
    "expired_requests",
    "lapsed_consents",
    "lapsing_notices",
    "reminders",
    "purged_requests",
    "purged_consents",
    "handoff_sessions",
)
# How often a worker process of `serve --workers N` writes its pool usage for other workers'
# scrapes (the scraping process writes its own just before answering).
POOL_SAMPLE_SECONDS = 5.0

logger = logging.getLogger("service.metrics")

# Counters read the same in both modes: multiprocess mode has no `_created` series.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """A process's registry: pool gauges, plus the request metrics of a process that serves
    HTTP (:attr:`http`) and the outbox and sweep counters of one that runs a worker
    (:attr:`worker`), each registered on first use so a process shows only what it does."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        # Summed over the live processes in multiprocess mode: the pools of one `serve`.
        self.db_pool = {
            stat: Gauge(
                f"consent_db_pool_{stat}",
                f"Database pool connections: {stat.replace('_', ' ')}.",
                multiprocess_mode="livesum",
                registry=self.registry,
            )
            for stat in POOL_STATS
        }
        self._read_pool: Callable[[], Mapping[str, int]] | None = None

    @functools.cached_property
    def http(self) -> HttpMetrics:
        return HttpMetrics(self.registry)

    @functools.cached_property
    def worker(self) -> WorkerMetrics:
        return WorkerMetrics(self.registry)

    @functools.cached_property
    def caches(self) -> CacheMetrics:
        return CacheMetrics(self.registry)

    def watch_pool(self, read: Callable[[], Mapping[str, int]]) -> None:
        """Report the pool usage ``read`` returns (see :meth:`sample_pool_forever`)."""
        self._read_pool = read
        if self.multiprocess_dir is None:
            for stat, gauge in self.db_pool.items():
                gauge.set_function(_reading(read, stat))
        else:
            self._sample_pool()

    def _sample_pool(self) -> None:
        if self._read_pool is not None:
            for stat, value in self._read_pool().items():
                self.db_pool[stat].set(value)

    async def sample_pool_forever(self, stop: asyncio.Event) -> None:
        """In multiprocess mode a scrape reads other processes' gauges from their files: keep
        this process's pool usage there current until ``stop``; then forget this process."""
        if self.multiprocess_dir is None:
            return
        try:
            while not stop.is_set():
                self._sample_pool()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=POOL_SAMPLE_SECONDS)
        finally:
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]

    def exposition(self) -> bytes:
        """Prometheus text of this process, or of every process in multiprocess mode."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        self._sample_pool()
        _forget_exited_processes(self.multiprocess_dir)
        everyone = CollectorRegistry()
        MultiProcessCollector(everyone, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(everyone)


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "consent_http_requests",
            "HTTP requests by method, route and status.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "consent_http_request_duration_seconds",
            "HTTP request latency by route.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outbox_delivered = {
            kind: Counter(
                f"consent_outbox_{kind}_delivered",
                f"Outbox {kind} messages delivered.",
                registry=registry,
            )
            for kind in tuple(OutboxKind)
        }
        self.outbox_failures = {
            kind: Counter(
                f"consent_outbox_{kind}_failures",
                f"Failed outbox {kind} delivery attempts.",
                registry=registry,
            )
            for kind in tuple(OutboxKind)
        }
        self.sweeps = Counter(
            "consent_sweeps", "Expiry and retention sweep passes run.", registry=registry
        )
        self.swept = Counter(
            "consent_swept_records",
            "Requests and consents the sweeps expired, notified or purged, by sweep.",
            ("sweep",),
            registry=registry,
        )
        for sweep in SWEEPS:
            self.swept.labels(sweep)

    def delivered(self, kind: OutboxKind) -> None:
        self.outbox_delivered[kind].inc()

    def delivery_failed(self, kind: OutboxKind) -> None:
        self.outbox_failures[kind].inc()

    def swept_records(self, counts: Mapping[str, int]) -> None:
        self.sweeps.inc()
        for sweep, count in counts.items():
            self.swept.labels(sweep).inc(count)


def data_request_exposition(*, unanswered: int, overdue: int) -> bytes:
    """Rights requests waiting for an answer, read from the database at each scrape.

    The database is the one source of these numbers, so whichever process answers the scrape
    reports them whole; they are not summed across processes or kept between scrapes.
    """
    registry = CollectorRegistry(auto_describe=True)
    Gauge(
        "consent_data_requests_open",
        "Rights requests not answered yet (open or in progress).",
        registry=registry,
    ).set(unanswered)
    Gauge(
        "consent_data_requests_overdue",
        "Rights requests not answered yet whose due date has passed.",
        registry=registry,
    ).set(overdue)
    return generate_latest(registry)


class CacheMetrics:
    """In-process caches (``service.db.cache``), labelled by cache name."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("cache",)
        self.hits = Counter(
            "consent_cache_hits", "Reads answered from the cache.", labels, registry=registry
        )
        self.misses = Counter(
            "consent_cache_misses", "Reads that went to the database.", labels, registry=registry
        )
        self.invalidations = Counter(
            "consent_cache_invalidations",
            "Invalidation notices applied (one key, or the whole cache).",
            labels,
            registry=registry,
        )
        self.size = Gauge(
            "consent_cache_entries",
            "Entries held in the cache.",
            labels,
            multiprocess_mode="livesum",
            registry=registry,
        )

    def stats(self, cache: str) -> CacheStats:
        return CacheStats(self, cache)


class CacheStats:
    """One cache's series, bound once so the hot path does no label lookups."""

    def __init__(self, metrics: CacheMetrics, cache: str) -> None:
        self._hits = metrics.hits.labels(cache)
        self._misses = metrics.misses.labels(cache)
        self._invalidations = metrics.invalidations.labels(cache)
        self._size = metrics.size.labels(cache)
        self._size.set(0)

    def hit(self) -> None:
        self._hits.inc()

    def miss(self) -> None:
        self._misses.inc()

    def invalidated(self, size: int) -> None:
        self._invalidations.inc()
        self._size.set(size)

    def resized(self, size: int) -> None:
        self._size.set(size)


def _reading(read: Callable[[], Mapping[str, int]], stat: str) -> Callable[[], float]:
    return lambda: float(read()[stat])


def _forget_exited_processes(directory: str) -> None:
    """Drop the live gauges of processes that ended without saying so (a crashed worker that
    the server replaced); their counters stay, so totals never go down."""
    pids = {
        Path(path).stem.rpartition("_")[2]
        for path in glob.glob(os.path.join(directory, "gauge_live*_*.db"))
    }
    for pid in pids:
        if pid.isdigit() and not _process_exists(int(pid)):
            mark_process_dead(int(pid), directory)  # type: ignore[no-untyped-call]


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def metrics_server(metrics: Metrics, host: str, port: int | None) -> Iterator[None]:
    """Serve ``metrics`` over HTTP on ``host:port`` (a thread of its own) while in the block;
    nothing when ``port`` is None."""
    if port is None:
        yield
        return
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    logger.info("metrics on http://%s:%d/metrics", host, port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
