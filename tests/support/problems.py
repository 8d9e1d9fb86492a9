"""What every refused API request answers: RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, *, title: bool = False) -> dict[str, Any]:
    """A problem+json answer with ``status`` and a detail (and, with ``title``, a title)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if title:
        assert isinstance(body["title"], str)
        assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body
