"""A value that is valid but for a trailing newline is refused everywhere: Python's ``$`` also
matches before a final newline, so each input pattern is anchored to the very end (``$(?!\\n)``,
which the OpenAPI document's ECMA-262 dialect reads the same way)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from service.clock import ManualClock
from service.consent.purposes import DEFAULT_CATALOGUE, load_catalogue
from service.http.patterns import whole
from service.settings import ConfigError
from tests.support.dates import birth_date_years_ago
from tests.support.flows import request_body
from tests.support.problems import PROBLEM_JSON
from tests.support.service import Service
from tests.support.stored_data import row_counts

OPENAPI = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def assert_refused(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)


async def test_a_subject_id_with_a_trailing_newline_is_refused_and_nothing_stored(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, db: asyncpg.Connection
) -> None:
    before = await row_counts(db)
    body = request_body("kid\n", "newline@example.com", birth_date_years_ago(clock))
    response = await client.post("/v1/consent-requests", json=body, headers=auth)
    assert_refused(response)
    assert "subject_id" in response.json()["detail"]
    assert await row_counts(db) == before


@pytest.mark.parametrize(
    "query",
    ["subject_id=kid%0A&purpose=tutoring", "subject_id=kid&purpose=tutoring%0A"],
    ids=["subject", "purpose"],
)
async def test_a_check_with_a_trailing_newline_is_refused(
    client: httpx.AsyncClient, auth: dict[str, str], query: str
) -> None:
    assert_refused(await client.get(f"/v1/consents/check?{query}", headers=auth))


@pytest.mark.parametrize(
    "path", ["/v1/subjects/kid%0A", "/v1/subjects/kid%0A/events", "/v1/subjects/kid%0A/export"]
)
async def test_a_staff_subject_path_with_a_trailing_newline_is_refused(
    svc: Service, path: str
) -> None:
    assert_refused(await svc.client.get(path, headers=svc.staff("support", "admin")))


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


def test_every_published_pattern_is_anchored_to_the_very_end() -> None:
    patterns = _patterns(json.loads(OPENAPI.read_text()))
    assert patterns, "the document publishes input patterns"
    for pattern in patterns:
        assert pattern.startswith("^"), pattern
        assert pattern.endswith("$(?!\\n)"), pattern
        assert "\\Z" not in pattern, f"not ECMA-262: {pattern}"


def test_whole_matches_the_value_and_nothing_more() -> None:
    pattern = re.compile(whole("[a-z]+"))
    assert pattern.search("kid")
    for wrong in ("kid\n", "\nkid", "kid\nkid", "", "ki d"):
        assert not pattern.search(wrong), repr(wrong)


def test_a_catalogue_purpose_id_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    shipped = json.loads(DEFAULT_CATALOGUE.read_text())
    shipped["purposes"][0]["id"] += "\n"
    catalogue = tmp_path / "purposes.json"
    catalogue.write_text(json.dumps(shipped))
    with pytest.raises(ConfigError, match="invalid purpose id"):
        load_catalogue(str(catalogue))
