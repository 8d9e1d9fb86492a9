"""The page a guardian sees when their network sent too many forms: in the browser's language,
with the wait in words, never an English sentence inside a Slovenian page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from service.clock import ManualClock
from service.http.guardian_pages import TOO_MANY_SUBMISSIONS
from service.i18n import translator
from service.security.tokens import new_link_token
from service.worker import Worker
from tests.support.dates import birth_date_years_ago
from tests.support.flows import create_request
from tests.support.guardian_client import guardian_link, review_csrf


@pytest.mark.parametrize("locale", ["en", "sl"])
async def test_too_many_submissions_page_speaks_the_browsers_language(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    worker: Worker,
    mailbox: Any,
    clock: ManualClock,
    locale: str,
) -> None:
    email = f"limit.page.{locale}@example.com"
    await create_request(
        client,
        auth,
        subject_id=f"child-limit-{locale}",
        email=email,
        birth_date=birth_date_years_ago(clock),
    )
    assert await worker.deliver_due() == 1
    token = await review_csrf(client, guardian_link(mailbox.to(email)[-1].text))
    now = clock.now()
    clock.set(now.replace(second=0, microsecond=0) + timedelta(minutes=1))
    headers = {"Accept-Language": f"{locale},en;q=0.5"}
    form = {"decision": "deny", "_csrf_token": token}
    for _ in range(30):
        probe = await client.post(f"/guardian/{new_link_token()}", data=form, headers=headers)
        assert probe.status_code == 404, probe.status_code

    limited = await client.post(f"/guardian/{new_link_token()}", data=form, headers=headers)

    assert limited.status_code == 429
    assert limited.headers["content-type"].startswith("text/html")
    wait = int(limited.headers["retry-after"])
    assert 1 <= wait <= 60
    translate = translator(locale)
    page = limited.text
    assert f'lang="{locale}"' in page
    assert translate.gettext(TOO_MANY_SUBMISSIONS) in page
    assert translate.gettext("Too many attempts") in page
    expected_wait = translate.ngettext(
        "Please try again in %(num)d second.", "Please try again in %(num)d seconds.", wait
    ) % {"num": wait}
    assert expected_wait in page
    if locale != "en":
        assert "Too many" not in page
        assert "try again" not in page
