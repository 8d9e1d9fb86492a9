"""A link that leads to no request is explained in the browser's language."""

from __future__ import annotations

import httpx
import pytest

UNKNOWN_LINKS = ("/guardian/" + "a" * 43, "/guardian/withdraw/" + "b" * 43, "/guardian/short")


@pytest.mark.parametrize("path", UNKNOWN_LINKS)
@pytest.mark.parametrize(
    ("accept_language", "lang", "heading"),
    [
        ("sl-SI,sl;q=0.9,en;q=0.5", "sl", "Ta povezava ni veljavna"),
        ("en-GB", "en", "This link is not valid"),
        (None, "en", "This link is not valid"),
    ],
)
async def test_an_unknown_link_speaks_the_browsers_language(
    client: httpx.AsyncClient, path: str, accept_language: str | None, lang: str, heading: str
) -> None:
    headers = {"Accept-Language": accept_language} if accept_language else {}
    page = await client.get(path, headers=headers)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert f'<html lang="{lang}">' in page.text
    assert f"<h1>{heading}</h1>" in page.text
