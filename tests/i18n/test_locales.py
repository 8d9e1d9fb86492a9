"""A request's language: negotiated against the shipped catalogs, stored in a column whose only
rule is the shape of a language code, and the language of the guardian's forms and errors."""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from service.clock import ManualClock
from service.worker import Worker
from tests.support.dates import birth_date_years_ago
from tests.support.flows import GRANT_ALL, WITHDRAW_HREF, create_request
from tests.support.guardian_client import guardian_link, open_and_submit, page_csrf


async def insert_request(db: asyncpg.Connection, locale: str) -> None:
    now = datetime.now(UTC)
    await db.execute(
        """
        insert into consent_requests (
            id, subject_id, status, country, age_of_consent, basis, birth_date,
            consent_required_until, guardian_email_enc, guardian_email_hash, guardian_ref,
            purposes, locale, policy_version, link_token_hash, created_at, expires_at, updated_at
        ) values ($1, $2, 'pending', 'SI', 15, 'test', $3, $4, $5, $6, 'g-ref',
                  array['tutoring'], $7, 'v1', $8, $9, $10, $9)
        """,
        uuid.uuid4(),
        f"child-{locale}",
        date(2015, 1, 1),
        date(2030, 1, 1),
        os.urandom(32),
        os.urandom(32),
        locale,
        os.urandom(32),
        now,
        now + timedelta(days=7),
    )


@pytest.mark.parametrize("locale", ["en", "sl", "de", "pt_BR"])
async def test_a_language_without_a_schema_change(db: asyncpg.Connection, locale: str) -> None:
    await insert_request(db, locale)
    assert await db.fetchval("select locale from consent_requests") == locale


@pytest.mark.parametrize("locale", ["", "english", "SL", "sl-SI", "sl_si", "e1"])
async def test_the_column_keeps_the_shape_of_a_language_code(
    db: asyncpg.Connection, locale: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="consent_requests_locale_format"):
        await insert_request(db, locale)


@pytest.mark.parametrize(
    ("requested", "stored"),
    [("sl-SI", "sl"), ("SL", "sl"), ("sl_si", "sl"), ("en-US", "en"), (" sl ", "sl")],
)
async def test_a_request_is_stored_in_a_shipped_language(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    requested: str,
    stored: str,
) -> None:
    await create_request(
        client,
        auth,
        subject_id="child-1",
        email="guardian@example.com",
        birth_date=birth_date_years_ago(clock),
        locale=requested,
    )
    assert await db.fetchval("select locale from consent_requests") == stored


FORM_ERRORS = {
    "en": {
        "decision": "Please choose whether to give or refuse consent.",
        "purposes": "Please choose only from the purposes listed on this page.",
        "attestation": "Please confirm that you are the child&#39;s parent or legal guardian.",
        "confirm": "Please confirm that you want to withdraw your consent.",
    },
    "sl": {
        "decision": "Izberite, ali soglasje dajete ali zavračate.",
        "purposes": "Izberite le med nameni, navedenimi na tej strani.",
        "attestation": "Potrdite, da ste otrokov starš ali zakoniti skrbnik.",
        "confirm": "Potrdite, da želite preklicati soglasje.",
    },
}


def listed_errors(page: str) -> list[str]:
    alert = re.search(r'<div class="alert" role="alert">(.*?)</div>', page, re.S)
    assert alert, "no error summary on the page"
    return re.findall(r"<li>(.*?)</li>", alert.group(1))


@pytest.mark.parametrize("locale", ["en", "sl"])
async def test_form_errors_are_told_in_the_language_of_the_request(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    worker: Worker,
    mailbox: Any,
    locale: str,
) -> None:
    errors = FORM_ERRORS[locale]
    await create_request(
        client,
        auth,
        subject_id="child-1",
        email="guardian@example.com",
        birth_date=birth_date_years_ago(clock),
        locale=locale,
    )
    assert await worker.deliver_due() == 1
    [message] = mailbox.to("guardian@example.com")
    link = guardian_link(message.text)

    unanswered = await open_and_submit(client, link, {"decision": "", "attestation": "yes"})
    assert unanswered.status_code == 422
    assert listed_errors(unanswered.text) == [errors["decision"]]
    unknown = await open_and_submit(
        client, link, {"decision": "grant", "purposes": ["tutoring", "pony"]}
    )
    assert unknown.status_code == 422
    assert listed_errors(unknown.text) == [errors["purposes"], errors["attestation"]]

    granted = await open_and_submit(client, link, GRANT_ALL)
    assert granted.status_code == 200
    withdrawal = WITHDRAW_HREF.search(granted.text)
    assert withdrawal
    token = await page_csrf(client, withdrawal.group(1))
    unconfirmed = await client.post(withdrawal.group(1), data={"_csrf_token": token})
    assert unconfirmed.status_code == 422
    assert listed_errors(unconfirmed.text) == [errors["confirm"]]
    assert f'<html lang="{locale}">' in unconfirmed.text
