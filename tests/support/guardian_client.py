"""Helpers that act like a guardian's browser over HTTP: read the emailed link, post forms."""

from __future__ import annotations

import re
from typing import Any

import httpx

LINK = re.compile(r"https?://[^\s<>\"]+/guardian/(?:withdraw/)?[A-Za-z0-9_-]+")
CSRF_FIELD = re.compile(
    r'name="_csrf_token"\s+value="([^"]+)"|value="([^"]+)"\s+name="_csrf_token"'
)


def guardian_link(text: str) -> str:
    """The guardian link in an email's text."""
    match = LINK.search(text)
    assert match, f"no guardian link in: {text[:400]}"
    return match.group(0)


def csrf_token(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "no CSRF field in the page"
    return match.group(1) or match.group(2)


def is_html(response: httpx.Response) -> bool:
    return response.headers["content-type"].startswith("text/html")


def path_of(link: str) -> str:
    return "/" + link.split("://", 1)[1].split("/", 1)[1]


async def page_csrf(client: httpx.AsyncClient, path: str) -> str:
    """Open a guardian page (200) and return the CSRF token of its form."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return csrf_token(page.text)


async def review_csrf(client: httpx.AsyncClient, link: str) -> str:
    """Open the emailed review link and return the CSRF token of its form."""
    return await page_csrf(client, path_of(link))


async def open_and_submit(
    client: httpx.AsyncClient, link: str, form: dict[str, Any]
) -> httpx.Response:
    token = await review_csrf(client, link)
    return await client.post(path_of(link), data={**form, "_csrf_token": token})
