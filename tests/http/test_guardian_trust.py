"""What tells a guardian the request is genuine and about their child: the optional child_hint
(validated, stored encrypted, shown escaped in the email and on the review page, deleted with
the guardian's address), times in the child's country's zone, named, and error pages that
name the operator and how to reach it. In English and Slovenian, on rendered text."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from service.clock import ManualClock
from service.i18n import translator
from service.security.tokens import new_link_token
from service.worker import Worker
from tests.support.dates import birth_date_years_ago
from tests.support.flows import request_body
from tests.support.guardian_client import guardian_link, path_of
from tests.support.problems import assert_problem
from tests.support.service import Service

GUARDIAN = "trusting.parent@example.com"
OPERATOR = "Učilnica Tutoring"
OPERATOR_EMAIL = "zasebnost@ucilnica-tutoring.si"
HINT = "mia_<b>2015</b>"


async def post_request(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, **overrides: Any
) -> httpx.Response:
    body = request_body("child-trust", GUARDIAN, birth_date_years_ago(clock), **overrides)
    return await client.post("/v1/consent-requests", json=body, headers=auth)


@pytest.mark.parametrize(
    "hint",
    [
        "",
        "   ",
        "x" * 65,
        "mia\nbcc",
        "mia\x00",
        "mia\u202egnp.exe",  # right-to-left override: reads as "mia exe.png"
        "mia\u2066x\u2069",  # isolates
        "mia\u200bx",  # zero-width space
        "mia\x85x",  # C1 control (next line)
    ],
)
async def test_a_child_hint_that_could_mislead_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    hint: str,
) -> None:
    assert_problem(await post_request(client, auth, clock, child_hint=hint), 422)
    assert await db.fetchval("select count(*) from consent_requests") == 0


@pytest.mark.parametrize("locale", ["en", "sl"])
async def test_the_hint_is_shown_escaped_in_the_email_and_on_the_review_page(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Any,
    db: asyncpg.Connection,
    locale: str,
) -> None:
    created = await post_request(client, auth, clock, child_hint=f"  {HINT} ", locale=locale)
    assert created.status_code == 201, created.text
    stored = await db.fetchval("select child_hint_enc from consent_requests")
    assert stored is not None
    assert b"mia_" not in stored  # encrypted, like the guardian's address
    mailbox.clear()
    assert await worker.deliver_due() == 1
    [message] = mailbox.to(GUARDIAN)
    shown = translator(locale).gettext(
        "This request concerns the account “%(account)s”.", account=HINT
    )
    assert shown in message.text
    assert html.escape(shown, quote=False) in message.html
    assert "<b>2015</b>" not in message.html

    page = await client.get(path_of(guardian_link(message.text)))
    assert page.status_code == 200
    assert html.escape(shown, quote=False) in page.text
    assert "<b>2015</b>" not in page.text
    if locale == "sl":
        assert "Zahteva se nanaša na račun »mia_&lt;b&gt;2015&lt;/b&gt;«." in page.text


async def test_without_a_hint_the_request_is_as_before(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Any,
) -> None:
    assert (await post_request(client, auth, clock)).status_code == 201
    mailbox.clear()
    assert await worker.deliver_due() == 1
    [message] = mailbox.to(GUARDIAN)
    assert "concerns the account" not in message.text


async def test_the_hint_is_deleted_with_the_guardian_address_at_expiry(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    db: asyncpg.Connection,
) -> None:
    assert (await post_request(client, auth, clock, child_hint="mia")).status_code == 201
    clock.advance(timedelta(days=8))
    assert (await worker.sweep())["expired_requests"] == 1
    row = await db.fetchrow("select guardian_email_enc, child_hint_enc from consent_requests")
    assert row["guardian_email_enc"] is None
    assert row["child_hint_enc"] is None


@pytest.mark.parametrize(
    ("country", "locale", "zone"),
    [
        ("SI", "en", "Central European"),
        ("SI", "sl", "srednjeevropski"),
        ("US", "en", "Eastern"),
        ("ES", "en", "Central European"),  # Madrid, not the Canaries (the age rule's zone)
    ],
)
async def test_times_are_in_the_childs_countrys_zone_and_named(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Any,
    country: str,
    locale: str,
    zone: str,
) -> None:
    purposes = ["tutoring"] if country == "US" else ["tutoring", "progress_reports", "newsletter"]
    created = await post_request(
        client,
        auth,
        clock,
        country=country,
        locale=locale,
        purposes=purposes,
    )
    assert created.status_code == 201, created.text
    mailbox.clear()
    assert await worker.deliver_due() == 1
    [message] = mailbox.to(GUARDIAN)
    page = await client.get(path_of(guardian_link(message.text)))
    for text in (message.text, page.text):
        assert zone in text
        assert "UTC" not in text
        assert "Coordinated Universal" not in text


@pytest.mark.parametrize(
    ("locale", "question"),
    [("en", "Questions? Contact Učilnica Tutoring:"), ("sl", "Imate vprašanja? Obrnite se na")],
)
async def test_error_pages_name_the_operator_and_its_contact(
    client: httpx.AsyncClient, locale: str, question: str
) -> None:
    headers = {"Accept-Language": locale}
    unknown_link = await client.get(f"/guardian/{new_link_token()}", headers=headers)
    refused_form = await client.post(
        f"/guardian/{new_link_token()}", data={"decision": "deny"}, headers=headers
    )
    assert unknown_link.status_code == 404
    assert refused_form.status_code == 403
    for page in (unknown_link, refused_form):
        assert question in page.text
        assert f'<a href="mailto:{OPERATOR_EMAIL}">{OPERATOR_EMAIL}</a>' in page.text


async def test_the_hint_is_in_the_guardians_data_copy_and_goes_with_erasure(
    svc: Service, api: dict[str, str], db: asyncpg.Connection
) -> None:
    body = request_body(
        "child-exported", GUARDIAN, birth_date_years_ago(svc.clock), child_hint="mia"
    )
    assert (
        await svc.client.post("/v1/consent-requests", json=body, headers=api)
    ).status_code == 201
    exported = await svc.client.get(
        "/v1/subjects/child-exported/export", headers=svc.staff("admin")
    )
    assert exported.status_code == 200, exported.text
    [request] = exported.json()["requests"]
    assert request["child_hint"] == "mia"
    assert "child_hint_enc" not in request
    erased = await svc.client.delete("/v1/subjects/child-exported", headers=svc.staff("admin"))
    assert erased.status_code == 200, erased.text
    assert (
        await db.fetchval("select count(*) from consent_requests where child_hint_enc is not null")
        == 0
    )
