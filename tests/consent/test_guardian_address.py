"""Guardian addresses: only an ASCII dot-atom local part and an IDNA domain are accepted, the
domain is stored and mailed as A-labels, case and ``+tag`` variants of one mailbox share its
request limit, and the email's ``To`` is the validated address.

Real PostgreSQL, a real SMTP server (the mail catcher); time moves only through the ManualClock.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from email import message_from_bytes
from email import policy as email_policy
from typing import Any

import asyncpg
import httpx
import pytest

from service.clock import ManualClock
from service.consent import subjects
from service.security.personal_data import DataProtector
from service.settings import Settings
from service.worker import Worker
from tests.support.dates import birth_date_years_ago
from tests.support.flows import request_body
from tests.support.stored_data import NOTHING_STORED, REQUEST_TABLES, row_counts

REFUSED = {
    "encoded word as the local part": "=?utf-8?q?parent?=@example.com",
    "encoded word naming another address": "=?utf-8?q?evil=40attacker.example?=@example.com",
    "encoded word inside the local part": "parent=?utf-8?b?QQ==?=@example.com",
    "NUL in the local part": "par\x00ent@example.com",
    "DEL in the local part": "parent\x7f@example.com",
    "header injection": "parent@example.com\r\nBcc: victim@example.org",
    "control character in the domain": "parent@exam\x01ple.com",
    "full-width address": "\uff50\uff41\uff52\uff45\uff4e\uff54\uff20example.com",
    "full-width local part": "\uff50\uff41\uff52\uff45\uff4e\uff54@example.com",
    "full-width domain": "parent@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
    "full-width at sign": "parent\uff20example.com",
    "leading space": " parent@example.com",
    "trailing newline": "parent@example.com\n",
    "trailing tab": "parent@example.com\t",
    "space in the local part": "par ent@example.com",
    "space in the domain": "parent@exam ple.com",
    "no-break space": "parent\u00a0@example.com",
    "quoted local part": '"parent"@example.com',
    "quoted local part with a space": '"par ent"@example.com',
    "comment": "parent(comment)@example.com",
    "display name": "Parent <parent@example.com>",
    "two addresses": "parent@example.com,other@example.com",
    "non-ASCII local part": "p\u00e4rent@example.com",
    "leading dot": ".parent@example.com",
    "trailing dot in the local part": "parent.@example.com",
    "two dots in a row": "par..ent@example.com",
    "single-label domain": "parent@localhost",
    "IPv4 literal": "parent@[192.0.2.1]",
    "bare IPv4 address": "parent@192.0.2.1",
    "label starting with a hyphen": "parent@-example.com",
    "underscore in the domain": "parent@exa_mple.com",
    "trailing dot in the domain": "parent@example.com.",
    "empty domain label": "parent@example..com",
    "A-label of a disallowed code point": "parent@xn--ls8h.example",
    "local part over 64 characters": "p" * 65 + "@example.com",
    "no local part": "@example.com",
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_an_address_outside_the_grammar_is_422_and_nothing_is_stored(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    case: str,
) -> None:
    body = request_body("child-address-1", REFUSED[case], birth_date_years_ago(clock))

    response = await client.post("/v1/consent-requests", json=body, headers=auth)

    assert response.status_code == 422, (case, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "guardian_email" in response.json()["detail"]
    assert await row_counts(db, REQUEST_TABLES) == NOTHING_STORED


async def _create(
    client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, subject: str, email: str
) -> httpx.Response:
    body = request_body(subject, email, birth_date_years_ago(clock))
    return await client.post("/v1/consent-requests", json=body, headers=auth)


async def _stored_address(db: asyncpg.Connection, settings: Settings, request_id: uuid.UUID) -> str:
    blob = await db.fetchval(
        "select guardian_email_enc from consent_requests where id = $1", request_id
    )
    return DataProtector(settings.data_key).decrypt(blob, request_id.bytes).decode()


def _to_header(raw: bytes) -> str:
    return str(message_from_bytes(raw, policy=email_policy.default)["To"])


@pytest.mark.parametrize(
    "given",
    [
        "Parent+Tag@B\u00fccher.Example",  # the precomposed umlaut
        "Parent+Tag@Bu\u0308cher.example",  # u and a combining diaeresis: the same domain
        "Parent+Tag@XN--BCHER-KVA.example",
    ],
)
async def test_an_idna_domain_is_stored_and_mailed_as_a_labels_and_to_is_the_address(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    settings: Settings,
    worker: Worker,
    mailbox: Any,
    given: str,
) -> None:
    validated = "Parent+Tag@xn--bcher-kva.example"  # local part and its +tag as given

    response = await _create(client, auth, clock, "child-address-idna", given)

    assert response.status_code == 201, response.text
    request_id = uuid.UUID(response.json()["id"])
    assert await _stored_address(db, settings, request_id) == validated
    assert await worker.deliver_due() == 1
    [message] = mailbox.messages
    assert message.recipients == [validated]
    assert _to_header(message.raw) == validated


async def test_case_and_tag_variants_of_one_mailbox_share_the_daily_limit(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    settings: Settings,
    worker: Worker,
    mailbox: Any,
) -> None:
    variants = [
        "parent+a@family.example",
        "parent+b@family.example",
        "PARENT@FAMILY.EXAMPLE",
        "Parent+School@Family.Example",
        "parent@family.example",
    ]
    for n, email in enumerate(variants):
        created = await _create(client, auth, clock, f"sibling-tag-{n}", email)
        assert created.status_code == 201, (email, created.text)
        clock.advance(timedelta(minutes=10))

    refused = await _create(client, auth, clock, "sibling-tag-5", "parent+c@family.example")

    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) == int(
        timedelta(days=1, minutes=-50).total_seconds()
    )
    assert await db.fetchval("select count(*) from consent_requests") == 5

    # Each email went to the address as given, local part and tag included.
    assert await worker.deliver_due() == 5
    assert sorted(r for m in mailbox.messages for r in m.recipients) == sorted(
        [*variants[:2], "PARENT@family.example", "Parent+School@family.example", variants[4]]
    )
    assert [_to_header(m.raw) for m in mailbox.messages] == [
        r for m in mailbox.messages for r in m.recipients
    ]

    # Another mailbox at the same domain has a limit of its own.
    other = await _create(client, auth, clock, "sibling-tag-6", "parent2+a@family.example")
    assert other.status_code == 201, other.text


async def test_staff_lookup_by_address_finds_every_variant_of_the_mailbox(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    settings: Settings,
    app: Any,
) -> None:
    for subject, email in [
        ("child-lookup-1", "Guardian+one@Lookup.example"),
        ("child-lookup-2", "guardian@lookup.example"),
        ("child-lookup-3", "guardian.other@lookup.example"),
    ]:
        created = await _create(client, auth, clock, subject, email)
        assert created.status_code == 201, created.text
        clock.advance(timedelta(minutes=1))

    for asked in ["guardian@lookup.example", "GUARDIAN+two@LOOKUP.EXAMPLE"]:
        found = await subjects.find_by_guardian(db, app.state.runtime, asked, reader="staff:test")
        assert {s.subject_id for s in found.subjects} == {"child-lookup-1", "child-lookup-2"}
    nothing = await subjects.find_by_guardian(
        db, app.state.runtime, "guardian @lookup.example", reader="staff:test"
    )
    assert nothing.subjects == []


async def test_rows_hashed_under_their_tagged_address_still_count_for_that_address(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    db: asyncpg.Connection,
    settings: Settings,
) -> None:
    email = "parent+club@legacy.example"
    for n in range(5):
        created = await _create(client, auth, clock, f"legacy-{n}", email)
        assert created.status_code == 201, created.text
    # Requests whose lookup hash is of the tagged address itself, tag and all.
    tagged_hash = DataProtector(settings.data_key).lookup_hash(email)
    await db.execute("update consent_requests set guardian_email_hash = $1", tagged_hash)

    refused = await _create(client, auth, clock, "legacy-5", email)

    assert refused.status_code == 429, refused.text
