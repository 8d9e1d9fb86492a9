"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import msgspec
from litestar import Response, get
from litestar.datastructures import State

from service.consent import data_requests
from service.consent.runtime import Runtime
from service.db.errors import DATABASE_ERRORS
from service.db.migrate import pending_versions
from service.db.pool import borrow
from service.http.problems import problem_response, problem_responses
from service.metrics import Metrics, data_request_exposition

logger = logging.getLogger("service.http.ops")


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str


@get("/healthz", tags=["ops"], summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@get(
    "/readyz",
    tags=["ops"],
    summary="Readiness: the database is reachable and its schema is current",
    responses=problem_responses(503),
)
async def readyz(state: State) -> Response[Any]:
    pool: asyncpg.Pool = state.pool
    try:
        async with borrow(pool) as connection:
            missing = await pending_versions(connection, state.schema_versions)
    except DATABASE_ERRORS as exc:
        return problem_response(
            503, f"database unreachable ({type(exc).__name__})", headers={"Retry-After": "5"}
        )
    if missing:
        return problem_response(
            503,
            f"database schema is behind: migrations {', '.join(missing)} not applied "
            "(run consent-service migrate)",
            headers={"Retry-After": "30"},
        )
    return Response(Health(status="ready"))


@get("/metrics", tags=["ops"], summary="Prometheus metrics", media_type="text/plain; version=0.0.4")
async def metrics(state: State) -> str:
    service_metrics: Metrics = state.metrics
    text = service_metrics.exposition()
    runtime: Runtime = state.runtime
    try:
        async with borrow(state.pool) as connection:
            counts = await data_requests.counts(connection, runtime)
    except DATABASE_ERRORS as exc:
        # the process's own metrics still answer; the database's numbers are left out, not guessed
        logger.warning("data request counts unavailable: %s", type(exc).__name__)
    else:
        text += data_request_exposition(unanswered=counts.unanswered, overdue=counts.overdue)
    return text.decode()
