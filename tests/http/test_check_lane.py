"""The check's fast lane answers a well-formed, authorised check itself, exactly as the route
would, and hands everything else to the route (which answers the problems, failing closed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from service.db.api_keys import hash_api_key, revoke_api_key
from service.http.check_lane import CHECK_PATH, check_lane_factory
from tests.support.credentials import make_api_key
from tests.support.flows import granted_consent
from tests.support.service import Service

# A trailing "&" is nothing to the route's query parser but more than the lane takes, so the
# same question reaches the route.
VIA_ROUTE = "&"


async def _both(
    client: httpx.AsyncClient, headers: dict[str, str], query: str
) -> tuple[httpx.Response, httpx.Response]:
    lane = await client.get(f"{CHECK_PATH}?{query}", headers=headers)
    route = await client.get(f"{CHECK_PATH}?{query}{VIA_ROUTE}", headers=headers)
    return lane, route


def _same(lane: httpx.Response, route: httpx.Response) -> None:
    assert lane.status_code == route.status_code == 200, (lane.text, route.text)
    assert lane.content == route.content
    assert sorted(lane.headers.multi_items()) == sorted(route.headers.multi_items())


async def test_the_lane_answers_as_the_route_does(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    granted = await granted_consent(
        svc, api, mailbox, subject_id="lane-granted", email="lane@example.com"
    )
    for query in (
        "subject_id=lane-granted&purpose=tutoring",
        "purpose=newsletter&subject_id=lane-granted",
        "subject_id=nobody-here&purpose=tutoring",
        "subject_id=lane%2Dgranted&purpose=progress_reports",
    ):
        lane, route = await _both(svc.client, api, query)
        _same(lane, route)
    lane, _ = await _both(svc.client, api, "subject_id=lane-granted&purpose=tutoring")
    assert lane.json()["allowed"] is True
    assert lane.json()["consent_id"] == granted.consent_id
    assert lane.headers["cache-control"] == "no-store"
    assert lane.headers["x-content-type-options"] == "nosniff"


async def test_the_lane_is_counted_under_the_route_template(
    svc: Service, api: dict[str, str]
) -> None:
    before = await svc.client.get("/metrics")
    await svc.client.get(f"{CHECK_PATH}?subject_id=counted&purpose=tutoring", headers=api)
    after = await svc.client.get("/metrics")
    series = 'consent_http_requests_total{method="GET",route="/v1/consents/check",status="200"}'

    def count(text: str) -> float:
        for line in text.splitlines():
            if line.startswith(series):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    assert count(after.text) == count(before.text) + 1


class Downstream:
    """Stands in for the route behind the lane, recording what was handed on."""

    def __init__(self) -> None:
        self.handed_on: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.handed_on.append(scope["query_string"].decode())
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _through_lane(
    svc: Service, query: str, headers: list[tuple[bytes, bytes]], *, method: str = "GET"
) -> tuple[int, Downstream]:
    downstream = Downstream()
    lane = check_lane_factory(lambda: svc.app.state)(downstream)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": CHECK_PATH,
        "query_string": query.encode(),
        "headers": headers,
    }
    await lane(scope, receive, send)  # type: ignore[arg-type]
    return sent[0]["status"], downstream


@pytest.fixture
async def bearer_header(db: asyncpg.Connection) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {await make_api_key(db, 'consent:check')}".encode())


async def test_a_valid_check_never_reaches_the_route(
    svc: Service, bearer_header: tuple[bytes, bytes]
) -> None:
    status, downstream = await _through_lane(
        svc, "subject_id=kid-1&purpose=tutoring", [bearer_header]
    )
    assert status == 200
    assert downstream.handed_on == []


@pytest.mark.parametrize(
    "query",
    [
        "subject_id=kid-1",
        "purpose=tutoring",
        "subject_id=kid-1&purpose=tutoring&",
        "subject_id=kid-1&purpose=tutoring&extra=1",
        "subject_id=kid-1&subject_id=kid-2&purpose=tutoring",
        "subject_id=&purpose=tutoring",
        "subject_id=kid%0A&purpose=tutoring",
        "subject_id=kid+1&purpose=tutoring",
        "subject_id=kid%201&purpose=tutoring",
        "subject_id=kid-1&purpose=tutoring%0A",
        "subject_id=kid-1&purpose=astrology",
        "subject_id=kid-1&purpose=Tutoring",
        "subject_id=" + "k" * 129 + "&purpose=tutoring",
        "subject_id=kid%FF&purpose=tutoring",
        "subject_id=kid%ZZ&purpose=tutoring",
    ],
)
async def test_a_malformed_check_goes_to_the_route(
    svc: Service, bearer_header: tuple[bytes, bytes], query: str
) -> None:
    status, downstream = await _through_lane(svc, query, [bearer_header])
    assert status == 299
    assert downstream.handed_on == [query]


async def test_checks_without_a_good_key_go_to_the_route(
    svc: Service, db: asyncpg.Connection, bearer_header: tuple[bytes, bytes]
) -> None:
    query = "subject_id=kid-1&purpose=tutoring"
    request_only = await make_api_key(db, "consent:request")
    revoked = await make_api_key(db, "consent:check")
    await revoke_api_key_by_value(db, revoked)
    for headers in (
        [],
        [(b"authorization", b"Bearer ")],
        [(b"authorization", b"Basic " + bearer_header[1].split(b" ", 1)[1])],
        [(b"authorization", b"Bearer not-a-key")],
        [(b"authorization", f"Bearer {request_only}".encode())],
        [(b"authorization", f"Bearer {revoked}".encode())],
        [bearer_header, bearer_header],
    ):
        status, downstream = await _through_lane(svc, query, headers)
        assert (status, downstream.handed_on) == (299, [query]), headers
    status, downstream = await _through_lane(svc, query, [bearer_header], method="HEAD")
    assert (status, downstream.handed_on) == (299, [query])


async def revoke_api_key_by_value(db: asyncpg.Connection, key: str) -> None:
    key_id = await db.fetchval("select id from api_keys where key_hash = $1", hash_api_key(key))
    assert await revoke_api_key(db, key_id, datetime.now(UTC))


async def test_the_route_still_answers_what_the_lane_hands_on(
    svc: Service, db: asyncpg.Connection, api: dict[str, str]
) -> None:
    request_only = await make_api_key(db, "consent:request")
    no_scope = await svc.client.get(
        f"{CHECK_PATH}?subject_id=kid-1&purpose=tutoring",
        headers={"Authorization": f"Bearer {request_only}"},
    )
    assert no_scope.status_code == 403
    missing = await svc.client.get(f"{CHECK_PATH}?subject_id=kid-1&purpose=tutoring")
    assert missing.status_code == 401
    unknown = await svc.client.get(f"{CHECK_PATH}?subject_id=kid-1&purpose=astrology", headers=api)
    assert unknown.status_code == 422
